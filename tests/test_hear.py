"""HEAR 2021 API contract (shapes, timestamps) on a small convnet."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import panns_keras
from panns_keras import hear


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from panns_keras.convert.model_dir import save_model_dir

    m = panns_keras.build_model("cnn6", num_classes=3, seed=0)
    d = save_model_dir(m, tmp_path_factory.mktemp("m") / "cnn6", [("a", "A"), ("b", "B"),
                                                                   ("c", "C")])  # fmt: skip
    return hear.load_model(str(d))


def test_attributes(model):
    assert isinstance(model, tf.Module)
    assert model.sample_rate == 32000
    assert model.scene_embedding_size == 512
    assert model.timestamp_embedding_size == 512


def test_scene_embeddings(model):
    audio = tf.random.uniform((3, 40000), -0.5, 0.5, seed=0)
    emb = hear.get_scene_embeddings(audio, model)
    assert emb.shape == (3, model.scene_embedding_size) and emb.dtype == tf.float32
    short = hear.get_scene_embeddings(tf.zeros((2, 500)), model)  # padded to min length
    assert short.shape == (2, 512)


@pytest.mark.parametrize("seconds", [1.0, 2.5])
def test_timestamp_embeddings(model, seconds):
    n = int(seconds * model.sample_rate)
    audio = tf.random.uniform((2, n), -0.5, 0.5, seed=1)
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    assert emb.shape[0] == 2 and emb.shape[2] == model.timestamp_embedding_size
    assert ts.shape == emb.shape[:2]
    ts = ts.numpy()
    hop = np.diff(ts, axis=1)
    assert np.all(hop > 0) and np.allclose(hop, model.timestamp_hop_ms)  # consistent hop
    assert np.allclose(ts[:, 0], model.timestamp_hop_ms / 2)  # centred frames
    assert ts[0, -1] <= 1000 * seconds  # every timestamp inside the sound
    assert np.array_equal(ts[0], ts[1])
