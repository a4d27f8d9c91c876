"""Layer factories and small blocks shared by the backbones.

Every layer with weights is named after the reference module it mirrors, with ``.``
replaced by ``_`` (``resnet.layer2.0.downsample.1`` -> ``resnet_layer2_0_downsample_1``),
so the checkpoint converter is a name table plus a kernel transpose. Layouts are
channels-last: 2-D maps ``(B, T, F, C)``, 1-D maps ``(B, T, C)``.
"""

from __future__ import annotations

from keras import layers as L
from keras import ops

from panns_keras.models.batchnorm import BatchNormalization
from panns_keras.models.conv import Conv2D
from panns_keras.models.initializers import NumpyGlorotUniform

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # PyTorch momentum 0.1


def layer_name(path: str) -> str:
    """Keras layer name of the reference module ``path``."""
    return path.replace(".", "_")


class Seeds:
    """Hands out one seed per random layer: ``seed + 1``, ``seed + 2``, ... (None stays None)."""

    def __init__(self, seed: int | None):
        self.seed, self.count = seed, 0

    def next(self) -> int | None:
        self.count += 1
        return None if self.seed is None else self.seed + self.count


def dropout(rate: float, seeds: Seeds) -> L.Dropout:
    return L.Dropout(rate, seed=seeds.next())


def batch_norm(path: str, zero_gamma: bool = False, **kwargs) -> BatchNormalization:
    return BatchNormalization(
        axis=-1,
        epsilon=BN_EPSILON,
        momentum=BN_MOMENTUM,
        name=layer_name(path),
        gamma_initializer="zeros" if zero_gamma else "ones",
        **kwargs,
    )


def conv2d(path: str, filters: int, kernel: int) -> Conv2D:
    return Conv2D(
        filters,
        kernel,
        padding="same",
        use_bias=False,
        name=layer_name(path),
        kernel_initializer=NumpyGlorotUniform(),
    )


def depthwise2d(path: str) -> L.DepthwiseConv2D:
    return L.DepthwiseConv2D(
        3,
        padding="same",
        use_bias=False,
        name=layer_name(path),
        depthwise_initializer=NumpyGlorotUniform(),
    )


def conv1d(
    path: str,
    filters: int,
    kernel: int,
    strides: int = 1,
    dilation: int = 1,
    use_bias: bool = False,
) -> L.Conv1D:
    return L.Conv1D(
        filters,
        kernel,
        strides=strides,
        dilation_rate=dilation,
        padding="valid",
        use_bias=use_bias,
        name=layer_name(path),
        kernel_initializer=NumpyGlorotUniform(),
    )


def dense(path: str, units: int) -> L.Dense:
    return L.Dense(units, name=layer_name(path), kernel_initializer=NumpyGlorotUniform())


def pad_time(x, left: int, right: int | None = None):
    """Zero-pad the time axis (axis 1) of a ``(B, T, C)`` map."""
    right = left if right is None else right
    return ops.pad(x, [[0, 0], [left, right], [0, 0]])


def avg_pool(x, pool):
    pool = tuple(pool) if isinstance(pool, (tuple, list)) else pool
    if pool in ((1, 1), 1):
        return x
    return ops.average_pool(x, pool, strides=pool, padding="valid")


def conv_block(x, path: str, width: int, kernel: int = 3, pool=(2, 2)):
    """``ConvBlock`` (two 3x3 conv-BN-ReLU) or ``ConvBlock5x5`` (one), then average pool."""
    x = ops.relu(batch_norm(f"{path}.bn1")(conv2d(f"{path}.conv1", width, kernel)(x)))
    if kernel == 3:
        x = ops.relu(batch_norm(f"{path}.bn2")(conv2d(f"{path}.conv2", width, 3)(x)))
    return avg_pool(x, pool)


def built_conv_block(path: str, in_channels: int, width: int, kernel: int = 3) -> list:
    """The layers of a ``ConvBlock`` that the reference creates but never calls, built."""
    layers = [conv2d(f"{path}.conv1", width, kernel), batch_norm(f"{path}.bn1")]
    layers[0].build((None, None, None, in_channels))
    layers[1].build((None, None, None, width))
    if kernel == 3:
        layers += [conv2d(f"{path}.conv2", width, 3), batch_norm(f"{path}.bn2")]
        layers[2].build((None, None, None, width))
        layers[3].build((None, None, None, width))
    return layers
