"""The backbones' kernel initialiser: Keras's Glorot-uniform distribution, drawn by NumPy."""

import keras
import numpy as np
import pytest

import panns_keras
from panns_keras.models.initializers import NumpyGlorotUniform, glorot_limit


@pytest.mark.parametrize("shape", [(3, 3, 64, 128), (2048, 527), (5, 32, 64), (3, 3, 96, 1)])
def test_the_distribution_is_keras_glorot_uniform(shape):
    limit = glorot_limit(shape)
    field = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    assert limit == pytest.approx(np.sqrt(6.0 / (field * (shape[-2] + shape[-1]))))
    ours = np.asarray(NumpyGlorotUniform(seed=1)(shape))
    theirs = np.asarray(keras.initializers.GlorotUniform(seed=1)(shape))
    assert ours.shape == theirs.shape == shape and ours.dtype == theirs.dtype == np.float32
    assert np.abs(ours).max() <= limit
    # uniform on [-limit, limit]: standard deviation limit / sqrt(3), as Keras's draw
    assert ours.std() == pytest.approx(limit / np.sqrt(3), rel=0.05)
    assert ours.std() == pytest.approx(theirs.std(), rel=0.08)


def test_seeds_and_keras_global_seed_make_builds_reproducible():
    a = np.asarray(NumpyGlorotUniform(seed=7)((4, 5)))
    assert np.array_equal(a, np.asarray(NumpyGlorotUniform(seed=7)((4, 5))))
    assert not np.array_equal(a, np.asarray(NumpyGlorotUniform(seed=8)((4, 5))))

    def weights():
        model = panns_keras.build_model("leenet11", num_classes=2)
        return np.concatenate([np.ravel(np.asarray(v)) for v in model.weights])

    keras.utils.set_random_seed(3)
    first = weights()
    keras.utils.set_random_seed(3)
    assert np.array_equal(first, weights())
    assert not np.array_equal(first, weights())


def test_backbone_kernels_use_it_and_it_serializes():
    model = panns_keras.build_model("mobilenet_v1", num_classes=2)
    attrs = ("kernel_initializer", "depthwise_initializer")
    inits = [
        getattr(layer, a)
        for layer in model.weight_layers().values()
        for a in attrs
        if hasattr(layer, a)
    ]
    assert len(inits) >= 28 and all(isinstance(i, NumpyGlorotUniform) for i in inits), inits
    again = keras.initializers.deserialize(keras.initializers.serialize(NumpyGlorotUniform(5)))
    assert isinstance(again, NumpyGlorotUniform) and again.get_config()["seed"] == 5
