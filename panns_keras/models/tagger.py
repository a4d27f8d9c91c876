"""`AudioTagger`: every PANNs system as one Keras model class driven by a :class:`ModelSpec`.

waveform -> log-mel (and/or Wavegram, or raw waveform) -> bn0 -> SpecAugment (training)
-> mixup (training, when a lambda is given) -> backbone -> head -> output dict.

Every leaf layer carrying weights is created through :meth:`AudioTagger._add` with the
reference module path (``resnet.layer2.0.downsample.1``); its Keras name is that path with
``.`` replaced by ``_``. ``model.torch_layers`` maps path -> layer, which is all the
checkpoint converter needs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
from keras import layers as L
from keras import ops

from panns_keras.models import spec as S
from panns_keras.models.batchnorm import BatchNormalization
from panns_keras.models.conv import Conv2D
from panns_keras.models.layers import LogMelSpectrogram, SpecAugment, do_mixup

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # PyTorch momentum 0.1


def spec_from_dict(d: dict[str, Any]) -> S.ModelSpec:
    """Inverse of :meth:`ModelSpec.to_dict`."""
    d = dict(d)
    family_cls = {
        "convnet": S.ConvNetSpec, "resnet": S.ResNetSpec, "mobilenet_v1": S.MobileNetV1Spec,
        "mobilenet_v2": S.MobileNetV2Spec, "leenet": S.LeeNetSpec, "dainet": S.DaiNetSpec,
        "res1dnet": S.Res1dNetSpec,
    }[d["family"]]  # fmt: skip

    def build(cls, value):
        if value is None:
            return None
        kw = {}
        for f in dataclasses.fields(cls):
            if f.name in value:
                v = value[f.name]
                kw[f.name] = _tuplify(v) if isinstance(v, list) else v
        return cls(**kw)

    d["backbone"] = build(family_cls, d["backbone"])
    d["head"] = build(S.HeadSpec, d["head"])
    d["frontend"] = build(S.LogMelSpec, d.get("frontend"))
    d["wavegram"] = build(S.WavegramSpec, d.get("wavegram"))
    d["spec_augment"] = build(S.SpecAugmentSpec, d.get("spec_augment"))
    d["unused"] = tuple(d.get("unused", ()))
    return S.ModelSpec(**d)


def _tuplify(v):
    return tuple(_tuplify(x) for x in v) if isinstance(v, list) else v


@keras.saving.register_keras_serializable(package="panns_keras")
class AudioTagger(keras.Model):
    """A PANNs audio tagger built from a :class:`ModelSpec`.

    Args:
        spec: the model spec (or its ``to_dict()`` form).
        seed: seed for SpecAugment and dropout (None: random).

    Call:
        ``model(waveform, training=False, mixup_lambda=None, return_intermediates=False)``
        with a float32 waveform ``(B, samples)`` at ``spec.sample_rate``. With
        ``mixup_lambda`` of shape ``(B,)`` (B even, reference layout
        ``[l0, 1 - l0, l1, 1 - l1, ...]``) pairs are mixed in the model's mixup domain and
        the outputs have batch B / 2.

    Returns:
        dict: ``clipwise_output`` (B, classes); ``embedding`` (B, E) for clip models;
        ``framewise_output`` (B, T, classes) for decision-level models; plus ``logits`` and
        ``logmel`` when ``return_intermediates``. Always float32.

    Example:
        >>> model = panns_keras.build_model("cnn6")
        >>> out = model(np.zeros((2, 32000), "float32"))
        >>> out["clipwise_output"].shape
        TensorShape([2, 527])
    """

    def __init__(self, spec: S.ModelSpec | dict, seed: int | None = None, **kwargs):
        if isinstance(spec, dict):
            spec = spec_from_dict(spec)
        kwargs.setdefault("name", spec.name)
        super().__init__(**kwargs)
        self.spec = spec
        self.seed = seed
        self.torch_layers: dict[str, L.Layer] = {}
        self._unused_shapes: dict[str, tuple] = {}
        self._seed_offset = 0
        fe = spec.frontend
        if fe is not None:
            self.logmel_extractor = LogMelSpectrogram(
                fe.sample_rate, fe.window_size, fe.hop_size, fe.mel_bins, fe.fmin, fe.fmax,
                name="logmel_extractor",
            )
        if fe is not None or "bn0" in spec.unused:
            self.bn0 = self._bn("bn0", dtype="float32")
            if fe is None:
                self._unused_shapes["bn0"] = (None, None, 64)
        if spec.spec_augment is not None and "spec_augmenter" not in spec.unused:
            sa = spec.spec_augment
            self.spec_augmenter = SpecAugment(
                sa.time_drop_width, sa.time_stripes_num, sa.freq_drop_width,
                sa.freq_stripes_num, seed=seed, name="spec_augmenter", dtype="float32",
            )
        if spec.wavegram is not None:
            self._build_wavegram(spec.wavegram)
        getattr(self, f"_build_{spec.family}")(spec.backbone)
        self._build_head(spec.head)

    # ------------------------------------------------------------------ layer factories
    def _add(self, path: str, layer: L.Layer) -> L.Layer:
        self.torch_layers[path] = layer
        return layer

    def _name(self, path: str) -> str:
        return path.replace(".", "_")

    def _conv2d(self, path, filters, kernel, groups=1, depthwise=False):
        if depthwise:
            layer = L.DepthwiseConv2D(kernel, padding="same", use_bias=False,
                                      name=self._name(path))  # fmt: skip
        else:
            layer = Conv2D(filters, kernel, padding="same", use_bias=False,
                           name=self._name(path))  # fmt: skip
        return self._add(path, layer)

    def _conv1d(self, path, filters, kernel, strides=1, dilation=1, use_bias=False):
        layer = L.Conv1D(filters, kernel, strides=strides, dilation_rate=dilation,
                         padding="valid", use_bias=use_bias, name=self._name(path))  # fmt: skip
        return self._add(path, layer)

    def _dense(self, path, units):
        return self._add(path, L.Dense(units, name=self._name(path)))

    def _bn(self, path, zero_gamma=False, **kwargs):
        layer = BatchNormalization(
            axis=-1, epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=self._name(path),
            gamma_initializer="zeros" if zero_gamma else "ones", **kwargs,
        )
        return self._add(path, layer)

    def _dropout(self, rate):
        self._seed_offset += 1
        seed = None if self.seed is None else self.seed + self._seed_offset
        return L.Dropout(rate, seed=seed)

    # ------------------------------------------------------------------ builders
    def _conv_block(self, path, width, kernel=3):
        convs = [self._conv2d(f"{path}.conv1", width, kernel), self._bn(f"{path}.bn1")]
        if kernel == 3:
            convs += [self._conv2d(f"{path}.conv2", width, 3), self._bn(f"{path}.bn2")]
        return convs

    def _build_convnet(self, b: S.ConvNetSpec):
        self.conv_blocks = []
        for i, width in enumerate(b.widths, start=1):
            path = f"conv_block{i}"
            block = self._conv_block(path, width, b.kernel)
            self.conv_blocks.append(block)
            if f"conv_block{i}" in self.spec.unused:
                self._unused_shapes[f"{path}.conv1"] = (None, None, None, 1)
                self._unused_shapes[f"{path}.conv2"] = (None, None, None, width)
                self._unused_shapes[f"{path}.bn1"] = (None, None, None, width)
                self._unused_shapes[f"{path}.bn2"] = (None, None, None, width)
        self.conv_dropout = self._dropout(self.spec.conv_dropout)

    def _build_resnet(self, b: S.ResNetSpec):
        self.conv_block1 = self._conv_block("conv_block1", 64)
        self.res_blocks = []
        inplanes, expansion = 64, (4 if b.block == "bottleneck" else 1)
        for li, (n, planes, stride) in enumerate(zip(b.layers, b.planes, b.strides), start=1):
            for bi in range(n):
                s = stride if bi == 0 else 1
                path = f"resnet.layer{li}.{bi}"
                blk = {"stride": s}
                if b.block == "basic":
                    blk["convs"] = [self._conv2d(f"{path}.conv1", planes, 3),
                                    self._bn(f"{path}.bn1"),
                                    self._conv2d(f"{path}.conv2", planes, 3),
                                    self._bn(f"{path}.bn2", zero_gamma=True)]  # fmt: skip
                else:
                    blk["convs"] = [self._conv2d(f"{path}.conv1", planes, 1),
                                    self._bn(f"{path}.bn1"),
                                    self._conv2d(f"{path}.conv2", planes, 3),
                                    self._bn(f"{path}.bn2"),
                                    self._conv2d(f"{path}.conv3", planes * 4, 1),
                                    self._bn(f"{path}.bn3", zero_gamma=True)]  # fmt: skip
                if s != 1 or inplanes != planes * expansion:
                    j = 1 if s == 2 else 0  # Sequential(AvgPool2d, conv, bn) vs (conv, bn)
                    blk["down"] = [self._conv2d(f"{path}.downsample.{j}", planes * expansion, 1),
                                   self._bn(f"{path}.downsample.{j + 1}")]  # fmt: skip
                inplanes = planes * expansion
                self.res_blocks.append(blk)
        self.conv_block_after1 = self._conv_block("conv_block_after1", b.after_width)
        self.conv_dropout = self._dropout(0.2)
        self.block_dropout = self._dropout(0.1)

    def _build_mobilenet_v1(self, b: S.MobileNetV1Spec):
        self.stem = [self._conv2d("features.0.0", b.stem, 3), self._bn("features.0.2")]
        self.mb_stages = []
        for i, (out, stride) in enumerate(b.stages, start=1):
            p = f"features.{i}"
            self.mb_stages.append({
                "stride": stride,
                "dw": [self._conv2d(f"{p}.0", None, 3, depthwise=True), self._bn(f"{p}.2")],
                "pw": [self._conv2d(f"{p}.4", out, 1), self._bn(f"{p}.5")],
            })  # fmt: skip

    def _build_mobilenet_v2(self, b: S.MobileNetV2Spec):
        self.stem = [self._conv2d("features.0.0", b.stem, 3), self._bn("features.0.2")]
        self.mb_stages = []
        inp, idx = b.stem, 1
        for t, c, n, s in b.stages:
            for k in range(n):
                stride = s if k == 0 else 1
                p = f"features.{idx}.conv"
                hidden = round(inp * t)
                stage = {"stride": stride, "residual": stride == 1 and inp == c, "expand": None}
                if t == 1:
                    stage["dw"] = [self._conv2d(f"{p}.0", None, 3, depthwise=True),
                                   self._bn(f"{p}.2")]  # fmt: skip
                    stage["pw"] = [self._conv2d(f"{p}.4", c, 1), self._bn(f"{p}.5")]
                else:
                    stage["expand"] = [self._conv2d(f"{p}.0", hidden, 1), self._bn(f"{p}.1")]
                    stage["dw"] = [self._conv2d(f"{p}.3", None, 3, depthwise=True),
                                   self._bn(f"{p}.5")]  # fmt: skip
                    stage["pw"] = [self._conv2d(f"{p}.7", c, 1), self._bn(f"{p}.8")]
                self.mb_stages.append(stage)
                inp, idx = c, idx + 1
        self.last_conv = [self._conv2d(f"features.{idx}.0", b.last, 1),
                          self._bn(f"features.{idx}.1")]  # fmt: skip

    def _build_leenet(self, b: S.LeeNetSpec):
        self.lee_blocks = []
        for i, (out, stride, pool) in enumerate(b.blocks, start=1):
            p = f"conv_block{i}"
            convs = [self._conv1d(f"{p}.conv1", out, 3, strides=stride), self._bn(f"{p}.bn1")]
            if b.convs_per_block == 2:
                convs += [self._conv1d(f"{p}.conv2", out, 3), self._bn(f"{p}.bn2")]
            self.lee_blocks.append({"stride": stride, "pool": pool, "convs": convs,
                                    "dropout": i <= b.dropout_blocks})  # fmt: skip
        self.block_dropout = self._dropout(b.dropout)

    def _build_dainet(self, b: S.DaiNetSpec):
        self.conv0 = self._conv1d("conv0", b.widths[0], b.conv0_kernel, strides=b.conv0_stride)
        self.bn0 = self._bn("bn0")
        self.dai_blocks = []
        inp = b.widths[0]
        for i, width in enumerate(b.widths, start=1):
            p = f"conv_block{i}"
            convs = []
            for j in range(1, 5):
                convs += [self._conv1d(f"{p}.conv{j}", width, 3),
                          self._bn(f"{p}.bn{j}", zero_gamma=j == 4)]  # fmt: skip
            down = [self._conv1d(f"{p}.downsample", width, 1), self._bn(f"{p}.bn_downsample")]
            if f"{p}.downsample" in self.spec.unused:
                self._unused_shapes[f"{p}.downsample"] = (None, None, inp)
                self._unused_shapes[f"{p}.bn_downsample"] = (None, None, width)
            self.dai_blocks.append({"convs": convs, "down": down})
            inp = width

    def _build_res1dnet(self, b: S.Res1dNetSpec):
        self.conv0 = self._conv1d("conv0", 64, 11, strides=5)
        self.bn0 = self._bn("bn0")
        self.res_blocks = []
        inplanes = 64
        for li, (n, planes, stride) in enumerate(zip(b.layers, b.planes, b.strides), start=1):
            for bi in range(n):
                s = stride if bi == 0 else 1
                path = f"resnet.layer{li}.{bi}"
                blk = {"stride": s,
                       "convs": [self._conv1d(f"{path}.conv1", planes, 3), self._bn(f"{path}.bn1"),
                                 self._conv1d(f"{path}.conv2", planes, 3, dilation=2),
                                 self._bn(f"{path}.bn2", zero_gamma=True)]}  # fmt: skip
                if s != 1 or inplanes != planes:
                    j = 1 if s != 1 else 0
                    blk["down"] = [self._conv1d(f"{path}.downsample.{j}", planes, 1),
                                   self._bn(f"{path}.downsample.{j + 1}")]  # fmt: skip
                inplanes = planes
                self.res_blocks.append(blk)
        self.block_dropout = self._dropout(0.1)

    def _build_wavegram(self, w: S.WavegramSpec):
        self.pre_conv0 = self._conv1d("pre_conv0", w.widths[0], 11, strides=5)
        self.pre_bn0 = self._bn("pre_bn0")
        self.pre_blocks = []
        for i, width in enumerate(w.widths[1:], start=1):
            p = f"pre_block{i}"
            self.pre_blocks.append([
                self._conv1d(f"{p}.conv1", width, 3), self._bn(f"{p}.bn1"),
                self._conv1d(f"{p}.conv2", width, 3, dilation=2), self._bn(f"{p}.bn2"),
            ])  # fmt: skip
        self.pre_block4 = self._conv_block("pre_block4", w.block4_width)
        if self.spec.frontend is None:
            self.wavegram_dropout = self._dropout(0.2)

    def _build_head(self, h: S.HeadSpec):
        k = self.spec.num_classes
        self.head_dropout = self._dropout(0.5)
        self.fc1 = self._dense("fc1", h.embedding_size)
        if h.kind == "decision_att":
            self.att = self._conv1d("att_block.att", k, 1, use_bias=True)
            self.cla = self._conv1d("att_block.cla", k, 1, use_bias=True)
            self.bn_att = self._bn("att_block.bn_att")
            self._unused_shapes["att_block.bn_att"] = (None, None, k)
        else:
            self.fc_audioset = self._dense("fc_audioset", k)

    # ------------------------------------------------------------------ build
    def build(self, input_shape=None):
        if self.built:
            return
        length = (input_shape[1] if input_shape and input_shape[1] else None) or max(
            self.spec.min_samples, self.spec.sample_rate
        )
        dummy = keras.KerasTensor((1, length), dtype="float32")
        backend_fn = keras.src.backend.compute_output_spec
        backend_fn(lambda x: self.call(x), dummy)
        for path, shape in self._unused_shapes.items():
            layer = self.torch_layers[path]
            if not layer.built:
                layer.build(shape)
        self.built = True

    # ------------------------------------------------------------------ forward
    def call(self, waveform, training=None, mixup_lambda=None, return_intermediates=False):
        spec = self.spec
        x_wave = ops.cast(waveform, "float32")
        mixing = mixup_lambda is not None
        if mixing and spec.mixup_domain == "waveform":
            x_wave = do_mixup(x_wave, mixup_lambda)
        extras = {}
        frames = None
        x = None
        if spec.frontend is not None:
            logmel = self.logmel_extractor(x_wave)  # (B, T, F)
            frames = ops.shape(logmel)[1]
            extras["logmel"] = logmel
            x = self.bn0(logmel, training=training)
            if getattr(self, "spec_augmenter", None) is not None:
                x = self.spec_augmenter(x, training=training)
            if mixing and spec.mixup_domain in ("logmel", "wavegram_logmel"):
                x = do_mixup(x, mixup_lambda)
            x = ops.expand_dims(x, -1)  # (B, T, F, 1)
        if spec.family == "convnet":
            x = self._forward_convnet(x, x_wave, training, mixup_lambda)
        else:
            x = getattr(self, f"_forward_{spec.family}")(x if x is not None else x_wave, training)
        if len(x.shape) == 4:
            x = ops.mean(x, axis=2)  # mean over frequency first: (B, T', C)
        return self._forward_head(x, frames, training, return_intermediates, extras)

    def _apply(self, seq, x, training, act="relu"):
        """conv, bn pairs, each followed by ``act``."""
        for conv, bn in zip(seq[0::2], seq[1::2]):
            x = bn(conv(x), training=training)
            if act:
                x = ops.relu(x) if act == "relu" else ops.relu6(x)
        return x

    def _forward_conv_block(self, block, x, pool, training):
        x = self._apply(block, x, training)
        if tuple(pool) != (1, 1):
            x = ops.average_pool(x, pool, strides=pool, padding="valid")
        return x

    def _forward_wavegram(self, x_wave, training):
        a = ops.expand_dims(x_wave, -1)  # (B, L, 1)
        a = self.pre_conv0(ops.pad(a, [[0, 0], [5, 5], [0, 0]]))
        a = ops.relu(self.pre_bn0(a, training=training))
        for block in self.pre_blocks:
            c1, b1, c2, b2 = block
            a = ops.relu(b1(c1(ops.pad(a, [[0, 0], [1, 1], [0, 0]])), training=training))
            a = ops.relu(b2(c2(ops.pad(a, [[0, 0], [2, 2], [0, 0]])), training=training))
            a = ops.max_pool(a, 4, strides=4, padding="valid")
        groups = self.spec.wavegram.groups
        shape = ops.shape(a)
        a = ops.reshape(a, (shape[0], shape[1], groups, a.shape[-1] // groups))  # (B, T, G, F)
        a = ops.transpose(a, (0, 1, 3, 2))  # (B, T, F, G): channel c -> (g, f) = divmod(c, F)
        return self._forward_conv_block(self.pre_block4, a, (2, 1), training)

    def _forward_convnet(self, x, x_wave, training, mixup_lambda):
        b, spec = self.spec.backbone, self.spec
        if spec.wavegram is not None:
            a1 = self._forward_wavegram(x_wave, training)
            if mixup_lambda is not None and spec.mixup_domain in ("wavegram", "wavegram_logmel"):
                a1 = do_mixup(a1, mixup_lambda)
            if x is not None:  # [log-mel branch, wavegram] along channels
                x = self._forward_conv_block(self.conv_blocks[0], x, b.pools[0], training)
                x = ops.concatenate([x, ops.cast(a1, x.dtype)], axis=-1)
            else:
                x = a1
            x = self.conv_dropout(x, training=training)
        for i in range(b.first_block - 1, len(b.widths)):
            if spec.wavegram is not None and i == 0:
                continue
            x = self._forward_conv_block(self.conv_blocks[i], x, b.pools[i], training)
            x = self.conv_dropout(x, training=training)
        return x

    def _forward_resnet(self, x, training):
        x = self._forward_conv_block(self.conv_block1, x, (2, 2), training)
        x = self.conv_dropout(x, training=training)
        bottleneck = self.spec.backbone.block == "bottleneck"
        for blk in self.res_blocks:
            identity = x
            if blk["stride"] == 2:
                x = ops.average_pool(x, 2, strides=2, padding="valid")
            c = blk["convs"]
            out = ops.relu(c[1](c[0](x), training=training))
            if bottleneck:
                out = ops.relu(c[3](c[2](out), training=training))
                out = self.block_dropout(out, training=training)
                out = c[5](c[4](out), training=training)
            else:
                out = self.block_dropout(out, training=training)
                out = c[3](c[2](out), training=training)
            if "down" in blk:
                conv, bn = blk["down"]
                identity = bn(conv(x), training=training)  # x is already pooled when stride 2
            x = ops.relu(out + identity)
        x = ops.average_pool(x, 2, strides=2, padding="valid")
        x = self.conv_dropout(x, training=training)
        x = self._forward_conv_block(self.conv_block_after1, x, (1, 1), training)
        return self.conv_dropout(x, training=training)

    def _forward_mobilenet_v1(self, x, training):
        x = self._mb_stem(x, training, "relu")
        for st in self.mb_stages:
            conv, bn = st["dw"]
            x = conv(x)
            if st["stride"] != 1:
                x = ops.average_pool(x, st["stride"], strides=st["stride"], padding="valid")
            x = ops.relu(bn(x, training=training))
            x = self._apply(st["pw"], x, training)
        return x

    def _mb_stem(self, x, training, act):
        conv, bn = self.stem
        x = ops.average_pool(conv(x), 2, strides=2, padding="valid")
        x = bn(x, training=training)
        return ops.relu(x) if act == "relu" else ops.relu6(x)

    def _forward_mobilenet_v2(self, x, training):
        x = self._mb_stem(x, training, "relu6")
        for st in self.mb_stages:
            inp = x
            if st["expand"] is not None:
                x = self._apply(st["expand"], x, training, act="relu6")
            conv, bn = st["dw"]
            x = conv(x)
            if st["stride"] != 1:
                x = ops.average_pool(x, st["stride"], strides=st["stride"], padding="valid")
            x = ops.relu6(bn(x, training=training))
            x = self._apply(st["pw"], x, training, act=None)
            if st["residual"]:
                x = x + inp
        return self._apply(self.last_conv, x, training, act="relu6")

    def _forward_leenet(self, x_wave, training):
        x = ops.expand_dims(x_wave, -1)
        for blk in self.lee_blocks:
            c = blk["convs"]
            x = ops.relu(c[1](c[0](ops.pad(x, [[0, 0], [1, 1], [0, 0]])), training=training))
            if len(c) == 4:
                x = ops.relu(c[3](c[2](ops.pad(x, [[0, 0], [1, 1], [0, 0]])), training=training))
            if blk["pool"] != 1:  # max_pool1d(k, stride k, pad k // 2); inputs >= 0 so 0-pad
                p = blk["pool"]
                x = ops.max_pool(ops.pad(x, [[0, 0], [p // 2, p // 2], [0, 0]]), p, strides=p)
            if blk["dropout"]:
                x = self.block_dropout(x, training=training)
        return x

    def _forward_dainet(self, x_wave, training):
        x = self.bn0(self.conv0(ops.expand_dims(x_wave, -1)), training=training)  # no ReLU
        pool = self.spec.backbone.pool
        for i, blk in enumerate(self.dai_blocks):
            if i:
                x = ops.max_pool(x, pool, strides=pool, padding="valid")
            c = blk["convs"]
            h = x
            for j in range(4):
                h = c[2 * j + 1](c[2 * j](ops.pad(h, [[0, 0], [1, 1], [0, 0]])), training=training)
                if j < 3:
                    h = ops.relu(h)
            if h.shape[-1] == x.shape[-1]:
                x = ops.relu(h + x)
            else:
                conv, bn = blk["down"]
                x = ops.relu(h + bn(conv(x), training=training))
        return x

    def _forward_res1dnet(self, x_wave, training):
        x = ops.pad(ops.expand_dims(x_wave, -1), [[0, 0], [5, 5], [0, 0]])
        x = self.bn0(self.conv0(x), training=training)  # no ReLU after bn0
        for blk in self.res_blocks:
            s = blk["stride"]
            out = x if s == 1 else ops.max_pool(x, s, strides=s, padding="valid")
            c = blk["convs"]
            out = ops.relu(c[1](c[0](ops.pad(out, [[0, 0], [1, 1], [0, 0]])), training=training))
            out = self.block_dropout(out, training=training)
            out = c[3](c[2](ops.pad(out, [[0, 0], [2, 2], [0, 0]])), training=training)
            identity = x
            if "down" in blk:
                conv, bn = blk["down"]
                if s != 1:
                    identity = ops.average_pool(identity, s, strides=s, padding="valid")
                identity = bn(conv(identity), training=training)
            x = ops.relu(out + identity)
        return x

    def _forward_head(self, x, frames, training, return_intermediates, extras):
        h = self.spec.head
        if h.kind == "clip":
            x = ops.max(x, axis=1) + ops.mean(x, axis=1)  # (B, C)
            if h.pre_dropout:
                x = self.head_dropout(x, training=training)
            x = ops.relu(self.fc1(x))
            embedding = self.head_dropout(x, training=training)
            # The classifier reads fc1's output before the embedding dropout (reference quirk).
            logits = ops.cast(self.fc_audioset(x), "float32")
            out = {"clipwise_output": ops.sigmoid(logits),
                   "embedding": ops.cast(embedding, "float32")}  # fmt: skip
        else:
            # max_pool1d(3, 1, 1) + avg_pool1d(3, 1, 1, count_include_pad=True) over time.
            xmax = ops.max_pool(ops.pad(x, [[0, 0], [1, 1], [0, 0]], mode="symmetric"), 3, 1)
            xavg = ops.average_pool(ops.pad(x, [[0, 0], [1, 1], [0, 0]]), 3, 1)
            x = self.head_dropout(xmax + xavg, training=training)
            x = ops.relu(self.fc1(x))
            x = self.head_dropout(x, training=training)
            if h.kind == "decision_att":
                logits = ops.cast(self.cla(x), "float32")  # (B, T', K)
                att = ops.clip(ops.cast(self.att(x), "float32"), -10.0, 10.0)
                norm_att = ops.softmax(att, axis=1)
                segmentwise = ops.sigmoid(logits)
                clipwise = ops.sum(norm_att * segmentwise, axis=1)
            else:
                logits = ops.cast(self.fc_audioset(x), "float32")
                segmentwise = ops.sigmoid(logits)
                reduce = ops.max if h.kind == "decision_max" else ops.mean
                clipwise = reduce(segmentwise, axis=1)
            # Each segment repeated 32 times, then the last one repeated up to T frames.
            n_seg = ops.shape(segmentwise)[1]
            ratio = self._time_ratio()
            idx = ops.minimum(ops.arange(frames) // ratio, n_seg - 1)
            out = {"clipwise_output": clipwise,
                   "framewise_output": ops.take(segmentwise, idx, axis=1)}  # fmt: skip
        if return_intermediates:
            out["logits"] = logits
            out.update(extras)
        return out

    def _time_ratio(self) -> int:
        ratio = 1
        for t, _ in self.spec.backbone.pools:
            ratio *= t
        return ratio

    # ------------------------------------------------------------------ serialisation
    def get_config(self):
        return {"spec": self.spec.to_dict(), "seed": self.seed, "name": self.name,
                "trainable": self.trainable}  # fmt: skip

    @classmethod
    def from_config(cls, config):
        return cls(**config)
