import numpy as np
import tensorflow as tf

from panns_keras.data import mixup


def _check_lambda(lam, pairs):
    lam = np.asarray(lam)
    assert lam.shape == (2 * pairs,)
    assert np.all(lam >= 0) and np.all(lam <= 1)
    np.testing.assert_allclose(lam[0::2] + lam[1::2], 1.0, atol=1e-6)


def test_lambda_eager_and_seeded():
    lam = mixup.sample_mixup_lambda(512, 1.0, seed=3).numpy()
    _check_lambda(lam, 512)
    np.testing.assert_array_equal(lam, mixup.sample_mixup_lambda(512, 1.0, seed=3).numpy())
    assert not np.array_equal(lam, mixup.sample_mixup_lambda(512, 1.0, seed=4).numpy())
    # Beta(1, 1) is uniform: mean 0.5, var 1/12
    assert abs(lam[0::2].mean() - 0.5) < 0.05 and abs(lam[0::2].var() - 1 / 12) < 0.02
    # small alpha concentrates near 0 and 1
    small = mixup.sample_mixup_lambda(512, 0.1, seed=1).numpy()[0::2]
    assert np.mean((small < 0.1) | (small > 0.9)) > 0.6
    _check_lambda(mixup.sample_mixup_lambda(4, 1.0).numpy(), 4)  # stateful


def test_do_mixup_math_and_label_mass():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5, 3)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 0, 1, 2]]
    lam = mixup.sample_mixup_lambda(4, 1.0, seed=0)
    out = mixup.do_mixup(x, lam).numpy()
    lv = lam.numpy()
    ref = np.stack([lv[2 * i] * x[2 * i] + lv[2 * i + 1] * x[2 * i + 1] for i in range(4)])
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
    ymix = mixup.do_mixup(y, lam).numpy()
    np.testing.assert_allclose(ymix.sum(axis=1), 1.0, atol=1e-6)  # label mass preserved


def test_mixup_inside_tf_function_and_dataset():
    @tf.function(jit_compile=False)
    def step(x, seed):
        lam = mixup.sample_mixup_lambda(tf.shape(x)[0] // 2, 1.0, seed)
        return lam, mixup.do_mixup(x, lam)

    x = tf.ones([6, 10])
    lam, out = step(x, tf.constant([1, 2], tf.int64))
    _check_lambda(lam.numpy(), 3)
    np.testing.assert_allclose(out.numpy(), 1.0, atol=1e-6)

    ds = tf.data.Dataset.from_tensor_slices(
        {
            "waveform": tf.random.normal([40, 16], seed=1),
            "target": tf.one_hot(tf.range(40) % 5, 5),
        }
    ).batch(8)
    ds = ds.enumerate().map(
        lambda i, b: mixup.mix_batch(b, 0.5, tf.stack([tf.cast(7, tf.int64), i]))
    )
    for b in ds:
        assert b["waveform"].shape == (4, 16)
        t = b["target"].numpy()
        np.testing.assert_allclose(t.sum(axis=1), 1.0, atol=1e-6)
        assert np.all(t >= 0) and np.all(t <= 1)
