"""EfficientAT dynamic MobileNets (``dymn04``, ``dymn10``, ``dymn20``) as functional models.

The reference is ``models/dymn/model.py`` and ``models/dymn/dy_block.py`` of
github.com/fschmid56/EfficientAT (Schmid et al., "Dynamic Convolutional Neural Networks as
Efficient Pre-trained Audio Models"), in eval mode. The architecture is a
:class:`~panns_keras.models.spec.DyMNSpec`.

How to call it (everything takes the spec, the number of mel bands, and optionally a
:class:`~panns_keras.models.blocks.Seeds` for reproducible initial weights):

- ``dymn_backbone(spec, mel_bins, seeds=None) -> keras.Model``: input ``"logmel"``
  ``(B, T, mel_bins, 1)``, the front end's log-mel laid out as the PANNs backbones receive
  it (EfficientAT's own model input is ``(B, 1, mel_bins, T)``); output the feature map after
  ``out_c`` (1x1 conv, BN, hard-swish), ``(B, T', F', C)`` channels-last with time first,
  ``T' = ceil(T / 32)``, ``F' = ceil(mel_bins / 32)`` with the default strides, and
  ``C = feature_channels(spec)`` (6 x the last block's width: 384 / 960 / 1920).
- ``dymn_head(spec, channels, num_classes=527, seeds=None) -> keras.Model``: input
  ``"features"`` ``(B, T', F', channels)``; output ``{"logits": (B, num_classes),
  "embedding": (B, channels)}``. The embedding is the mean of the feature map over time and
  frequency (the reference's second output); the logits come from the ``'mlp'`` head (mean,
  ``classifier.2`` Linear, hard-swish, dropout, ``classifier.5`` Linear) or the
  ``'fully_convolutional'`` head (``classifier.0`` 1x1 conv, ``classifier.1`` BN, mean).
- ``build_dymn(spec, mel_bins, num_classes=527, seed=None) -> keras.Model``: both in one flat
  functional model, ``(B, T, mel_bins, 1) -> {"logits", "embedding"}``.

Layer names are the reference's state_dict module paths with ``.`` replaced by ``_``
(``layers.3.depth_conv.residuals.0`` -> ``layers_3_depth_conv_residuals_0``, ``in_c.0``,
``out_c.1``, ``classifier.5``), so a released ``.pt`` maps by a name table:
:func:`panns_keras.convert.mapping.assign_state_dict` loads a torch-layout state_dict onto
these models strictly. Besides Conv2D / BatchNormalization / Dense, two layer kinds hold
reference tensors in a layout of their own and convert them in ``torch_values(need)``:
:class:`DynamicConv` (the reference's ``weight`` ``(1, 1, K, out * in/groups * k * k)``) and
:class:`DynamicReLU` (the buffers ``lambdas`` and ``init_v``, non-trainable weights here, as
they are buffers there).

Inside, maps are ``(B, F, T, C)``: frequency on the first spatial axis as in the reference's
``(B, C, F, T)``, so kernels convert with the usual ``(2, 3, 1, 0)`` transpose and the
coordinate attention reads as the reference does. Every padding is explicit and symmetric
(PyTorch's), never Keras's ``'same'`` (asymmetric with stride 2).

Not ported: the reference's ablation switches (``no_dyrelu``, ``no_dyconv``, ``no_ca``),
``use_dy_blocks='replace_se'`` (mixes in the ``mn`` family's blocks) and the training-time
temperature schedule (``update_params``): the temperature is a fixed spec field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers as L
from keras import ops

from panns_keras.models.batchnorm import BatchNormalization
from panns_keras.models.blocks import Seeds, layer_name
from panns_keras.models.spec import DyMNSpec

BN_EPSILON = 1e-3  # the reference's norm_layer: BatchNorm2d(eps=0.001, momentum=0.01)
BN_MOMENTUM = 0.99
HEAD_BN_EPSILON = 1e-5  # the fully convolutional head's plain BatchNorm2d
LINEAR_STD = 0.01  # the reference initialises every Linear with N(0, 0.01)

# input, kernel, expanded, out, hard-swish, stride (an int, or "sN": the spec's Nth stride)
_TABLE = (
    (16, 3, 16, 16, False, 1),
    (16, 3, 64, 24, False, "s0"),
    (24, 3, 72, 24, False, 1),
    (24, 5, 72, 40, False, "s1"),
    (40, 5, 120, 40, False, 1),
    (40, 5, 120, 40, False, 1),
    (40, 3, 240, 80, True, "s2"),
    (80, 3, 200, 80, True, 1),
    (80, 3, 184, 80, True, 1),
    (80, 3, 184, 80, True, 1),
    (80, 3, 480, 112, True, 1),
    (112, 3, 672, 112, True, 1),
    (112, 5, 672, 160, True, "s3"),
    (160, 5, 960, 160, True, 1),
    (160, 5, 960, 160, True, 1),
)


def make_divisible(value: float, divisor: int = 8) -> int:
    """The reference's channel rounding: nearest multiple of ``divisor`` (at least
    ``divisor``), one step up when rounding down would lose more than 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclass(frozen=True)
class BlockConfig:
    """One dynamic block after width scaling (``DynamicInvertedResidualConfig``)."""

    input_channels: int
    kernel: int
    expanded: int
    out_channels: int
    hard_swish: bool
    stride: int
    context: int  # the context size H that drives Dy-Conv and Dy-ReLU


def block_configs(spec: DyMNSpec) -> list[BlockConfig]:
    """The 15 blocks of ``spec``."""
    if len(spec.strides) != 4 or any(s not in (1, 2) for s in spec.strides):
        raise ValueError(f"dymn strides must be four values of 1 or 2, got {spec.strides}")
    w = spec.width_mult
    lo = make_divisible(spec.min_context_size * w)
    hi = make_divisible(spec.max_context_size * w)
    rows = []
    for inp, kernel, exp, out, hs, stride in _TABLE:
        stride = spec.strides[int(stride[1:])] if isinstance(stride, str) else stride
        expanded = make_divisible(exp * w)
        context = int(np.clip(make_divisible(expanded // spec.context_ratio), lo, hi))
        rows.append(
            BlockConfig(
                make_divisible(inp * w),
                kernel,
                expanded,
                make_divisible(out * w),
                hs,
                stride,
                context,
            )
        )
    return rows


def feature_channels(spec: DyMNSpec) -> int:
    """Channels of the backbone's output (and size of the embedding)."""
    return 6 * block_configs(spec)[-1].out_channels


def hidden_channels(spec: DyMNSpec) -> int:
    """Width of the mlp head's hidden layer (``classifier.2``)."""
    return make_divisible(1280 * spec.width_mult)


# ---------------------------------------------------------------------- initialisers / layers
@keras.saving.register_keras_serializable(package="panns_keras")
class NumpyRandomNormal(keras.initializers.RandomNormal):
    """``keras.initializers.RandomNormal`` drawn by NumPy's generator (no per-shape XLA
    program under JAX; see :mod:`panns_keras.models.initializers`)."""

    def __call__(self, shape, dtype=None):
        seed = self.seed if isinstance(self.seed, int) else None
        values = np.random.default_rng(seed).standard_normal(tuple(shape), dtype=np.float32)
        values *= np.float32(self.stddev)
        values += np.float32(self.mean)
        return ops.convert_to_tensor(values, dtype=dtype or keras.config.floatx())


def _he_fan_out(fan_out: int, seeds: Seeds | None) -> NumpyRandomNormal:
    """``kaiming_normal_(mode='fan_out')``: N(0, 2 / fan_out)."""
    return NumpyRandomNormal(stddev=float(np.sqrt(2.0 / fan_out)), seed=_seed(seeds))


def _seed(seeds: Seeds | None) -> int | None:
    return None if seeds is None else seeds.next()


@keras.saving.register_keras_serializable(package="panns_keras")
class DynamicConv(L.Layer):
    """Dynamic convolution: per example, a softmax-weighted sum of ``num_kernels`` kernels.

    Called on ``[x, logits]``: ``x`` ``(B, F, T, C)``, ``logits`` ``(B, num_kernels)`` (the
    reference's ``residuals`` Linear on the context). Attention ``softmax(logits /
    temperature)``. Pointwise (``kernel_size`` 1, no groups): the kernels are mixed per
    example, ``(B, C, filters)``, and applied as one batched matrix product, as the
    reference does. Depthwise (``depthwise=True``, ``groups = C``): each of the kernels is a
    plain depthwise convolution of the zero-padded input and their outputs are mixed (the
    same sum by linearity, with constant kernels: no per-example kernel, which TFLite's
    depthwise op would not take). Padding ``(kernel_size - 1) // 2`` on each side, as the
    reference.

    Weights: ``kernel`` ``(num_kernels, C, filters)`` pointwise, ``(k, k, C, num_kernels)``
    depthwise (kernel ``j`` is ``kernel[..., j]``).

    Example:
        >>> conv = DynamicConv(24, 1, num_kernels=4, temperature=1.0)
        >>> conv([np.zeros((2, 8, 10, 16), "float32"), np.zeros((2, 4), "float32")]).shape
        (2, 8, 10, 24)
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int = 1,
        strides: int = 1,
        depthwise: bool = False,
        num_kernels: int = 4,
        temperature: float = 30.0,
        kernel_initializer="he_normal",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not depthwise and kernel_size != 1:
            raise ValueError("DynamicConv: a full (non-depthwise) kernel must be 1x1 here")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.depthwise = bool(depthwise)
        self.num_kernels = int(num_kernels)
        self.temperature = float(temperature)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        channels = int(input_shape[0][-1])
        if self.depthwise:
            if channels != self.filters:
                raise ValueError(
                    f"depthwise DynamicConv {self.name}: {channels} in, {self.filters} out"
                )
            shape = (self.kernel_size, self.kernel_size, channels, self.num_kernels)
        else:
            shape = (self.num_kernels, channels, self.filters)
        self.kernel = self.add_weight(
            name="kernel", shape=shape, initializer=self.kernel_initializer
        )

    def attention(self, logits):
        """Softmax over the kernels, ``(B, num_kernels)``."""
        return ops.softmax(logits / self.temperature, axis=-1)

    def call(self, inputs):
        x, logits = inputs
        att = self.attention(ops.cast(logits, self.compute_dtype))
        if not self.depthwise:
            k, c, o = self.kernel.shape
            mixed = ops.matmul(att, ops.reshape(self.kernel, (k, c * o)))  # (B, C * O)
            return ops.matmul(x, ops.reshape(mixed, (-1, 1, c, o)))  # (B, F, T, O)
        pad = (self.kernel_size - 1) // 2
        x = ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        out = None
        for j in range(self.num_kernels):
            y = ops.depthwise_conv(
                x, self.kernel[..., j : j + 1], strides=self.strides, padding="valid"
            )
            y = y * ops.reshape(att[:, j], (-1, 1, 1, 1))
            out = y if out is None else out + y
        return out

    def compute_output_shape(self, input_shape):
        b, f, t, _ = input_shape[0]
        if self.depthwise and self.strides > 1:
            f, t = (None if d is None else (d - 1) // self.strides + 1 for d in (f, t))
        return (b, f, t, self.filters)

    def torch_shape(self) -> tuple[int, ...]:
        """Shape of the reference's ``weight`` (``att_groups`` 1)."""
        size = int(np.prod(self.kernel.shape)) // self.num_kernels
        return (1, 1, self.num_kernels, size)

    def torch_values(self, need: Callable[[str], np.ndarray]) -> list[np.ndarray]:
        """The reference's tensors (popped by ``need(name)``) -> ``[kernel]``."""
        w = np.asarray(need("weight"))
        if w.shape != self.torch_shape():
            raise ValueError(
                f"weight has shape {w.shape}, {self.name} expects {self.torch_shape()}"
            )
        k = self.num_kernels
        if self.depthwise:  # (1, 1, K, C * 1 * kh * kw) -> (kh, kw, C, K)
            kh = self.kernel_size
            return [w.reshape(k, self.filters, kh, kh).transpose(2, 3, 1, 0)]
        c = self.kernel.shape[1]  # (1, 1, K, O * C) -> (K, C, O)
        return [w.reshape(k, self.filters, c).transpose(0, 2, 1)]

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "depthwise": self.depthwise,
            "num_kernels": self.num_kernels,
            "temperature": self.temperature,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


@keras.saving.register_keras_serializable(package="panns_keras")
class DynamicReLU(L.Layer):
    """Dynamic ReLU-B: per example and channel, the max of ``pieces`` linear maps.

    Called on ``[x, theta]``: ``x`` ``(B, F, T, C)``, ``theta`` ``(B, C * 2 * pieces)`` (the
    reference's ``coef_net`` Linear on the context, channel-major). The coefficients are
    ``(2 * sigmoid(theta) - 1) * lambdas + init_v``; the first ``pieces`` are slopes, the
    rest offsets. ``lambdas`` and ``init_v`` are the reference's buffers (non-trainable
    weights: a checkpoint carries them), ``[1] * M + [0.5] * M`` and ``[1, 0, ...]``.

    Example:
        >>> act = DynamicReLU()
        >>> act([np.ones((2, 4, 5, 8), "float32"), np.zeros((2, 32), "float32")]).shape
        (2, 4, 5, 8)
    """

    def __init__(self, pieces: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.pieces = int(pieces)

    def build(self, input_shape):
        m = self.pieces
        self.channels = int(input_shape[0][-1])
        self.lambdas = self.add_weight(
            name="lambdas",
            shape=(2 * m,),
            trainable=False,
            initializer=keras.initializers.Constant([1.0] * m + [0.5] * m),
        )
        self.init_v = self.add_weight(
            name="init_v",
            shape=(2 * m,),
            trainable=False,
            initializer=keras.initializers.Constant([1.0] + [0.0] * (2 * m - 1)),
        )

    def call(self, inputs):
        x, theta = inputs
        m, c = self.pieces, self.channels
        theta = 2.0 * ops.sigmoid(ops.cast(theta, self.compute_dtype)) - 1.0
        coefs = ops.reshape(theta, (-1, c, 2 * m)) * self.lambdas + self.init_v  # (B, C, 2M)
        out = None
        for j in range(m):
            slope = ops.reshape(coefs[:, :, j], (-1, 1, 1, c))
            offset = ops.reshape(coefs[:, :, m + j], (-1, 1, 1, c))
            y = x * slope + offset
            out = y if out is None else ops.maximum(out, y)
        return out

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def torch_values(self, need: Callable[[str], np.ndarray]) -> list[np.ndarray]:
        """The reference's buffers (popped by ``need(name)``) -> ``[lambdas, init_v]``."""
        return [np.asarray(need("lambdas")), np.asarray(need("init_v"))]

    def get_config(self):
        return {**super().get_config(), "pieces": self.pieces}


# ---------------------------------------------------------------------- graph pieces
def _hardswish(x):
    return x * ops.relu6(x + 3.0) / 6.0  # torch's Hardswish, in its order


def _pad(x, pad: int):
    """Zero padding of both spatial axes of ``(B, F, T, C)``."""
    return ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]) if pad else x


def _conv(path: str, filters: int, kernel: int, seeds, stride: int = 1, use_bias: bool = False):
    return L.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding="valid",
        use_bias=use_bias,
        name=layer_name(path),
        kernel_initializer=_he_fan_out(filters * kernel * kernel, seeds),
    )


def _bn(path: str, epsilon: float = BN_EPSILON):
    return BatchNormalization(axis=-1, epsilon=epsilon, momentum=BN_MOMENTUM, name=layer_name(path))


def _linear(path: str, units: int, seeds) -> L.Dense:
    init = NumpyRandomNormal(stddev=LINEAR_STD, seed=_seed(seeds))
    return L.Dense(units, name=layer_name(path), kernel_initializer=init)


def _seq_pool(x, stride: int):
    """``AvgPool`` (3, stride 's', padding 1, zeros counted) along axis 1 of ``(B, L, 1, C)``."""
    if stride == 1:
        return x
    x = ops.pad(x, [[0, 0], [1, 1], [0, 0], [0, 0]])
    return L.AveragePooling2D((3, 1), strides=(stride, 1), padding="valid")(x)


def _context(x, p: str, cfg: BlockConfig, seeds):
    """``ContextGen``: context vector ``(B, H)`` and the coordinate-attention gates
    ``(B, F', 1, E)`` (frequency) and ``(B, 1, T', E)`` (time)."""
    freq = ops.mean(x, axis=2, keepdims=True)  # (B, F, 1, C)
    time = ops.transpose(ops.mean(x, axis=1, keepdims=True), (0, 2, 1, 3))  # (B, T, 1, C)
    n_freq = freq.shape[1]
    g = ops.concatenate([freq, time], axis=1)  # (B, F + T, 1, C)
    g = _conv(f"{p}.joint_conv", cfg.context, 1, seeds)(g)
    g = _hardswish(_bn(f"{p}.joint_norm")(g))  # (B, F + T, 1, H)
    h_c = ops.mean(g, axis=(1, 2))  # (B, H): over frequency and time positions together
    h_f, h_t = g[:, :n_freq], g[:, n_freq:]
    conv_f = _conv(f"{p}.conv_f", cfg.expanded, 1, seeds, use_bias=True)
    conv_t = _conv(f"{p}.conv_t", cfg.expanded, 1, seeds, use_bias=True)
    g_f = conv_f(_seq_pool(h_f, cfg.stride))  # (B, F', 1, E)
    g_t = ops.transpose(conv_t(_seq_pool(h_t, cfg.stride)), (0, 2, 1, 3))  # (B, 1, T', E)
    return h_c, g_f, g_t


def _dynamic_conv(
    x,
    h_c,
    path: str,
    filters: int,
    spec: DyMNSpec,
    seeds,
    kernel: int = 1,
    stride: int = 1,
    depthwise: bool = False,
):
    logits = _linear(f"{path}.residuals.0", spec.dyconv_k, seeds)(h_c)  # (B, K)
    fan_out = filters * kernel * kernel  # per kernel, as kaiming_normal_(weight[i])
    conv = DynamicConv(
        filters,
        kernel,
        stride,
        depthwise=depthwise,
        num_kernels=spec.dyconv_k,
        temperature=spec.temperature,
        kernel_initializer=_he_fan_out(fan_out, seeds),
        name=layer_name(path),
    )
    return conv([x, logits])


def _block(x, i: int, cfg: BlockConfig, spec: DyMNSpec, seeds):
    """``DY_Block``: context, expand, depthwise, Dy-ReLU, coordinate attention, project."""
    p = f"layers.{i}"
    inp = x
    h_c, g_f, g_t = _context(x, f"{p}.context_gen", cfg, seeds)
    if cfg.expanded != cfg.input_channels:
        x = _dynamic_conv(x, h_c, f"{p}.exp_conv", cfg.expanded, spec, seeds)
        x = _bn(f"{p}.exp_norm")(x)
        x = _hardswish(x) if cfg.hard_swish else ops.relu(x)
    x = _dynamic_conv(
        x, h_c, f"{p}.depth_conv", cfg.expanded, spec, seeds, cfg.kernel, cfg.stride, depthwise=True
    )
    x = _bn(f"{p}.depth_norm")(x)
    theta = _linear(f"{p}.depth_act.coef_net.0", 2 * spec.dyrelu_k * cfg.expanded, seeds)(h_c)
    x = DynamicReLU(spec.dyrelu_k, name=layer_name(f"{p}.depth_act"))([x, theta])
    x = x * ops.sigmoid(g_f) * ops.sigmoid(g_t)  # coordinate attention (CoordAtt)
    x = _dynamic_conv(x, h_c, f"{p}.proj_conv", cfg.out_channels, spec, seeds)
    x = _bn(f"{p}.proj_norm")(x)
    if cfg.stride == 1 and cfg.input_channels == cfg.out_channels:
        x = x + inp
    return x


def _backbone_graph(logmel, spec: DyMNSpec, seeds):
    configs = block_configs(spec)
    x = ops.transpose(logmel, (0, 2, 1, 3))  # (B, F, T, 1): the reference's (F, T) order
    x = _conv("in_c.0", configs[0].input_channels, 3, seeds, stride=2)(_pad(x, 1))
    x = _hardswish(_bn("in_c.1")(x))
    for i, cfg in enumerate(configs):
        x = _block(x, i, cfg, spec, seeds)
    x = _conv("out_c.0", 6 * configs[-1].out_channels, 1, seeds)(x)
    x = _hardswish(_bn("out_c.1")(x))
    return ops.transpose(x, (0, 2, 1, 3))  # (B, T', F', C)


def _head_graph(features, spec: DyMNSpec, num_classes: int, seeds):
    embedding = ops.mean(features, axis=(1, 2))  # (B, C)
    if spec.head_type == "mlp":
        x = _hardswish(_linear("classifier.2", hidden_channels(spec), seeds)(embedding))
        x = L.Dropout(spec.dropout, seed=_seed(seeds), name="classifier_3")(x)
        logits = _linear("classifier.5", num_classes, seeds)(x)
    elif spec.head_type == "fully_convolutional":
        x = _conv("classifier.0", num_classes, 1, seeds)(features)
        x = _bn("classifier.1", HEAD_BN_EPSILON)(x)
        logits = ops.mean(x, axis=(1, 2))
    else:
        raise ValueError(
            f"dymn head_type must be 'mlp' or 'fully_convolutional', got {spec.head_type!r}"
        )
    return {"logits": logits, "embedding": embedding}


def _logmel_input(mel_bins: int):
    return keras.Input((None, int(mel_bins), 1), name="logmel")


def dymn_backbone(spec: DyMNSpec, mel_bins: int, seeds: Seeds | None = None) -> keras.Model:
    """``(B, T, mel_bins, 1)`` log-mel -> ``(B, T', F', C)`` features (see the module)."""
    logmel = _logmel_input(mel_bins)
    return keras.Model(logmel, _backbone_graph(logmel, spec, seeds), name="backbone")


def dymn_head(
    spec: DyMNSpec, channels: int, num_classes: int = 527, seeds: Seeds | None = None
) -> keras.Model:
    """``(B, T', F', channels)`` -> ``{"logits", "embedding"}`` (see the module)."""
    features = keras.Input((None, None, int(channels)), name="features")
    return keras.Model(features, _head_graph(features, spec, num_classes, seeds), name="head")


def build_dymn(
    spec: DyMNSpec,
    mel_bins: int,
    num_classes: int = 527,
    seed: int | None = None,
    name: str = "dymn",
) -> keras.Model:
    """One flat functional model ``(B, T, mel_bins, 1) -> {"logits", "embedding"}``.

    Example:
        >>> model = build_dymn(DyMNSpec(width_mult=0.4), mel_bins=128)
        >>> out = model(np.zeros((1, 100, 128, 1), "float32"))
        >>> out["logits"].shape, out["embedding"].shape
        ((1, 527), (1, 384))
    """
    seeds = Seeds(seed)
    logmel = _logmel_input(mel_bins)
    features = _backbone_graph(logmel, spec, seeds)
    return keras.Model(logmel, _head_graph(features, spec, num_classes, seeds), name=name)
