"""The speed layers (im2col Conv2D, BatchNormalization's training kernels) equal Keras's."""

import numpy as np
import pytest
import tensorflow as tf
from keras import layers as L

from panns_keras.models.batchnorm import BatchNormalization
from panns_keras.models.conv import Conv2D, plain_convolutions


def _grads(layer, x, training):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * tf.sin(tf.cast(y, tf.float32)))
    return y, tape.gradient(loss, [x, *layer.trainable_variables])


@pytest.mark.parametrize("use_bias", [False, True])
def test_im2col_conv_matches_convolution(use_bias):
    x = tf.random.stateless_normal([2, 5, 3, 512], [0, 1])
    layer = Conv2D(1024, 3, padding="same", use_bias=use_bias)
    layer.build(x.shape)
    if use_bias:
        layer.bias.assign(tf.random.stateless_normal([1024], [0, 2]))
    assert layer._im2col
    with plain_convolutions():
        y0, g0 = _grads(layer, x, training=True)  # tf.nn.convolution
    y1, g1 = _grads(layer, x, training=True)  # one matmul
    np.testing.assert_allclose(y1.numpy(), y0.numpy(), atol=2e-5 * np.abs(y0).max())
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-5 * np.abs(b).max())


def test_im2col_only_for_wide_3x3_same():
    for kw, cin, expect in [
        (dict(filters=1024, kernel_size=3, padding="same"), 512, True),
        (dict(filters=512, kernel_size=3, padding="same"), 512, False),  # narrow output
        (dict(filters=1024, kernel_size=3, padding="same"), 256, False),  # narrow input
        (dict(filters=1024, kernel_size=5, padding="same"), 512, False),
        (dict(filters=1024, kernel_size=3, padding="valid"), 512, False),
        (dict(filters=1024, kernel_size=3, padding="same", strides=2), 512, False),
    ]:
        layer = Conv2D(**kw)
        layer.build((None, 8, 4, cin))
        assert layer._im2col is expect, (kw, cin)


@pytest.fixture(params=[False, True], ids=["two_pass", "fused"])
def fused(request):
    from panns_keras.models import kernels

    previous = kernels.set_fused_batchnorm(request.param)
    yield request.param
    kernels.set_fused_batchnorm(previous)


@pytest.mark.parametrize("shape", [(4, 7, 5, 16), (4, 9, 16), (6, 16)])
def test_batchnorm_training_kernels_match_keras(shape, fused):
    x = tf.random.stateless_normal(shape, [1, 0]) * 3.0 + 1.0
    probe = BatchNormalization(epsilon=1e-5)
    probe.build(shape)
    graph = tf.function(lambda v: probe(v, training=True)).get_concrete_function(x).graph
    kinds = {op.type for op in graph.get_operations()}
    assert ("FusedBatchNormV3" in kinds) == fused
    ref = L.BatchNormalization(epsilon=1e-5, momentum=0.9)
    ours = BatchNormalization(epsilon=1e-5, momentum=0.9)
    for layer in (ref, ours):
        layer.build(shape)
        layer.gamma.assign(tf.random.stateless_normal([16], [1, 2]))
        layer.beta.assign(tf.random.stateless_normal([16], [1, 3]))
    y0, g0 = _grads(ref, x, training=True)
    y1, g1 = _grads(ours, x, training=True)
    np.testing.assert_allclose(y1.numpy(), y0.numpy(), atol=1e-5)
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-5 * max(1.0, np.abs(b).max()))
    flat = x.numpy().reshape(-1, 16)
    n = flat.shape[0]
    np.testing.assert_allclose(ours.moving_mean.numpy(), 0.1 * flat.mean(0), atol=1e-6)
    # PyTorch's running variance uses the unbiased batch variance (Keras's the biased one).
    unbiased = flat.var(0) * n / (n - 1)
    np.testing.assert_allclose(ours.moving_variance.numpy(), 0.9 + 0.1 * unbiased, rtol=1e-5)
    # Inference is Keras's own path.
    np.testing.assert_array_equal(
        ours(x, training=False).numpy(),
        L.BatchNormalization.call(ours, x, training=False).numpy(),
    )


def test_batchnorm_written_gradient_is_the_float64_gradient():
    """The two-pass kernel's written-out backward against automatic differentiation of
    Keras's BatchNorm in float64, on an input off centre (mean 3, std 0.5)."""
    shape = (3, 11, 4, 8)
    x = tf.random.stateless_normal(shape, [3, 0], dtype=tf.float64) * 0.5 + 3.0
    x = tf.cast(tf.cast(x, tf.float32), tf.float64)  # both take the same float32 values
    gamma = tf.random.stateless_normal([8], [3, 1], dtype=tf.float64)
    beta = tf.random.stateless_normal([8], [3, 2], dtype=tf.float64)
    weight = tf.random.stateless_normal(shape, [3, 3], dtype=tf.float64)
    ref = L.BatchNormalization(epsilon=1e-5, dtype="float64")
    ours = BatchNormalization(epsilon=1e-5)
    got = {}
    for layer, dtype in ((ref, tf.float64), (ours, tf.float32)):
        layer.build(shape)
        layer.gamma.assign(tf.cast(gamma, dtype))
        layer.beta.assign(tf.cast(beta, dtype))
        xin = tf.cast(x, dtype)
        with tf.GradientTape() as tape:
            tape.watch(xin)
            y = layer(xin, training=True)
            loss = tf.reduce_sum(tf.cast(y, tf.float64) * weight)
        grads = tape.gradient(loss, [xin, layer.gamma, layer.beta])
        got[dtype] = [np.asarray(g, np.float64) for g in [y, *grads]]
    for name, a, b in zip(["y", "dx", "dgamma", "dbeta"], got[tf.float32], got[tf.float64]):
        scale = np.abs(b).max()
        assert np.abs(a - b).max() <= 2e-5 * scale, (name, np.abs(a - b).max(), scale)


def test_batchnorm_bfloat16_input(fused):
    x = tf.cast(tf.random.stateless_normal([4, 7, 5, 16], [2, 0]), tf.bfloat16)
    ref = L.BatchNormalization(epsilon=1e-5, dtype="mixed_bfloat16")
    ours = BatchNormalization(epsilon=1e-5, dtype="mixed_bfloat16")
    y0, y1 = ref(x, training=True), ours(x, training=True)
    assert y1.dtype == tf.bfloat16
    np.testing.assert_allclose(
        tf.cast(y1, tf.float32).numpy(), tf.cast(y0, tf.float32).numpy(), atol=3e-2
    )


def test_export_traces_keep_convolutions(monkeypatch):
    """TF graphs use the matmul; TFLite / ONNX conversion traces keep one conv per layer.

    Cnn14's stages at 1/16 width (tests/narrow.py) with the im2col thresholds scaled the same
    way: the layers that take the matmul are those of full-width Cnn14 (blocks 5-6), and the
    model builds and traces in a fraction of full width's time."""
    from panns_keras.export import tflite as T
    from panns_keras.models import conv
    from tests.helpers.narrow import narrow_model

    monkeypatch.setattr(conv, "IM2COL_MIN_IN", conv.IM2COL_MIN_IN // 16)
    monkeypatch.setattr(conv, "IM2COL_MIN_OUT", conv.IM2COL_MIN_OUT // 16)
    model = narrow_model("cnn14")
    spec = tf.TensorSpec([1, 32000], tf.float32)
    plain = tf.function(lambda v: model(v, training=False)["clipwise_output"])
    ops = [op.type for op in plain.get_concrete_function(spec).graph.get_operations()]
    # blocks 5-6 as matmuls (the fifth ConcatV2 is the front end's framing)
    assert ops.count("Conv2D") == 8 and ops.count("ConcatV2") == 5
    fn, _ = T.concrete_window_function(model, 32000, ("clipwise_output",))
    ops = [op.type for op in fn.graph.get_operations()]
    assert ops.count("Conv2D") == 12 and ops.count("ConcatV2") == 1
    x = tf.random.stateless_normal([1, 32000], [3, 4], stddev=0.1)
    np.testing.assert_allclose(fn(x)["clipwise_output"].numpy(), plain(x).numpy(), atol=1e-5)
