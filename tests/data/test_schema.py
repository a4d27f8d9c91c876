import numpy as np
import tensorflow as tf

from panns_keras.audio import fit_length
from panns_keras.data import schema


def test_int16_conversion_rule():
    x = np.array([-2.0, -1.0, -0.5, 0.0, 1e-5, 2e-5, 0.5, 1.0, 3.0], np.float32)
    got = schema.float_to_int16(x)
    np.testing.assert_array_equal(got, np.rint(np.clip(x, -1, 1) * 32767).astype(np.int16))
    assert got[0] == -32767 and got[-1] == 32767 and got[4] == 0 and got[5] == 1


def test_roundtrip_pad_trim_and_fields():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 100).astype(np.float32)
    for clip_samples, n in ((150, 100), (60, 60)):
        b = schema.serialize_example(x, [7, 2, 7], "clip/1", "/src/a.wav", 16000, clip_samples)
        p = schema.parse_example(tf.constant(b))
        wav = schema.decode_audio(p).numpy()
        assert wav.shape == (clip_samples,) and wav.dtype == np.float32
        np.testing.assert_allclose(wav[:n], x[:n], atol=0.5 / 32767 + 1e-7)
        assert np.all(wav[n:] == 0)
        assert int(p[schema.NUM_SAMPLES]) == n
        assert int(p[schema.SAMPLE_RATE]) == 16000
        assert p[schema.LABELS].numpy().tolist() == [2, 7]
        assert p[schema.CLIP_ID].numpy() == b"clip/1"
        assert p[schema.SOURCE].numpy() == b"/src/a.wav"
        # the same bytes through protobuf's own parser
        ex = tf.train.Example.FromString(b)
        raw = ex.features.feature[schema.AUDIO].bytes_list.value[0]
        np.testing.assert_array_equal(
            np.frombuffer(raw, "<i2"),
            schema.float_to_int16(fit_length(x, clip_samples)),
        )
        np.testing.assert_allclose(wav, schema.int16_to_float(np.frombuffer(raw, "<i2")))


def test_decode_divides_by_32767():
    b = schema.serialize_example(np.array([32767, -32767, 1], np.int16), [], "a")
    wav = schema.decode_audio(schema.parse_example(tf.constant(b))).numpy()
    np.testing.assert_array_equal(wav, np.array([1.0, -1.0, 1 / 32767], np.float32))


def test_parse_is_graph_safe_and_multi_hot():
    recs = [
        schema.serialize_example(np.zeros(8, np.float32), labels, f"c{i}", clip_samples=8)
        for i, labels in enumerate([[0, 3], [], [4, 4, 9]])
    ]

    @tf.function
    def f(r):
        p = schema.parse_example(r)
        return schema.decode_audio(p), schema.multi_hot(p[schema.LABELS], 5)

    ds = tf.data.Dataset.from_tensor_slices(recs).map(f)
    hots = np.stack([h.numpy() for _, h in ds])
    np.testing.assert_array_equal(hots, [[1, 0, 0, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1]])
    assert schema.example_to_numpy(recs[2])[schema.LABELS] == [4, 9]
