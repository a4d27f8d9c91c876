"""EfficientAT dynamic MobileNets (panns_keras.models.dymn): the dymn04 / dymn10 / dymn20
goldens, the dymn04 checkpoint, strict conversion, the layers and serialisation.

Runs on any Keras backend (`KERAS_BACKEND=jax .venv-jax/bin/python -m pytest` this file).
The goldens' input is their own ``out/logmel`` (``[B, mel, T]``, EfficientAT's front end),
so these tests check the network alone.
"""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from panns_keras.convert.golden import golden_state
from panns_keras.convert.mapping import ConversionError, assign_state_dict
from panns_keras.convert.torch_format import read_torch_checkpoint
from panns_keras.models.blocks import Seeds
from panns_keras.models.dymn import (
    DynamicConv,
    DynamicReLU,
    block_configs,
    build_dymn,
    dymn_backbone,
    dymn_head,
    feature_channels,
    make_divisible,
)
from panns_keras.models.spec import DyMNSpec

ASSETS = Path(__file__).parents[1] / "assets"
GOLDEN = ASSETS / "golden" / "efficientat"
CKPT = ASSETS / "ckpt" / "dymn04_golden.pt"


def _golden(name):
    z = np.load(GOLDEN / f"{name}.npz")
    return z, json.loads(str(z["meta"]))


def _spec(meta) -> DyMNSpec:
    assert set(meta["get_model_kwargs"]) == {"width_mult"}  # get_model's defaults otherwise
    return DyMNSpec(width_mult=meta["get_model_kwargs"]["width_mult"])


def _logmel(z):
    return np.ascontiguousarray(z["out/logmel"].transpose(0, 2, 1)[..., None])  # (B, T, mel, 1)


def _predict(model, x):
    if keras.backend.backend() == "jax":  # compiled once; op-by-op eager JAX compiles each op
        return model.predict(x, batch_size=len(x), verbose=0)
    return model(x, training=False)


def _run(model, x):
    return {k: np.asarray(v) for k, v in _predict(model, x).items()}


def _check(out, z):
    errors = {}
    for key in ("logits", "embedding"):
        ref = z[f"out/{key}"]
        assert out[key].shape == ref.shape, key
        errors[key] = float(np.max(np.abs(out[key] - ref)))
        assert errors[key] <= float(z[f"tol/{key}"]), f"{key}: max |diff| {errors[key]:.3g}"
    return errors


def _trainable(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize(
    "name", ["dymn04", "dymn10", pytest.param("dymn20", marks=pytest.mark.slow)]
)
def test_golden(name):
    z, meta = _golden(name)
    model = build_dymn(_spec(meta), mel_bins=meta["frontend"]["n_mels"])
    assert _trainable(model) == meta["n_params"]  # the reference's count (dymn10: 10.55 M)
    assign_state_dict(model, golden_state(z, meta))
    _check(_run(model, _logmel(z)), z)


def test_checkpoint_reproduces_golden():
    """The released format (``torch.save(state_dict)``) through the restricted unpickler."""
    z, meta = _golden("dymn04")
    state = read_torch_checkpoint(CKPT)
    assert list(state) == meta["state_dict_keys"]
    model = build_dymn(_spec(meta), mel_bins=128)
    assign_state_dict(model, state)
    _check(_run(model, _logmel(z)), z)
    relu = model.get_layer("layers_0_depth_act")  # buffers, loaded as the reference loads them
    np.testing.assert_array_equal(np.asarray(relu.lambdas), [1.0, 1.0, 0.5, 0.5])


def test_released_temperature_changes_outputs():
    """The golden (a fresh ``get_model``) runs at temperature 30; a released checkpoint at
    ``pretrain_final_temp`` 1: the field matters and is wired to every dynamic conv."""
    z, meta = _golden("dymn04")
    model = build_dymn(DyMNSpec(width_mult=0.4, temperature=1.0), mel_bins=128)
    temps = {layer.temperature for layer in model.layers if isinstance(layer, DynamicConv)}
    assert temps == {1.0}
    assign_state_dict(model, golden_state(z, meta))
    out = _run(model, _logmel(z))
    assert float(np.max(np.abs(out["logits"] - z["out/logits"]))) > 0.1


def test_conversion_is_strict():
    z, meta = _golden("dymn04")
    state = golden_state(z, meta)
    model = build_dymn(_spec(meta), mel_bins=128)
    missing = {k: v for k, v in state.items() if k != "layers.5.depth_act.init_v"}
    with pytest.raises(ConversionError, match="layers.5.depth_act.init_v"):
        assign_state_dict(model, missing)
    extra = {**state, "layers.5.depth_conv.bias": np.zeros((4, 48), "float32")}
    with pytest.raises(ConversionError, match="layers.5.depth_conv.bias"):
        assign_state_dict(model, extra)
    bad = {**state, "layers.2.exp_conv.weight": state["layers.2.exp_conv.weight"][..., :-8]}
    with pytest.raises(ConversionError, match="layers.2.exp_conv: weight has shape"):
        assign_state_dict(model, bad)
    dymn10 = build_dymn(DyMNSpec(width_mult=1.0), mel_bins=128)
    with pytest.raises(ConversionError):
        assign_state_dict(dymn10, state)  # another width: shapes differ


def test_block_table():
    """Widths, strides and context sizes of ``_dymn_conf`` / ``DY_Block``."""
    assert [make_divisible(v) for v in (6.4, 9.6, 25.6, 512.0, 3.0)] == [8, 16, 24, 512, 8]
    blocks = block_configs(DyMNSpec())
    assert [b.stride for b in blocks] == [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1]
    assert [b.context for b in blocks] == [
        32,
        32,
        32,
        32,
        32,
        32,
        64,
        48,
        48,
        48,
        120,
        128,
        128,
        128,
        128,
    ]
    assert feature_channels(DyMNSpec(width_mult=0.4)) == 384
    assert [b.stride for b in block_configs(DyMNSpec(strides=(2, 1, 2, 1)))][::3] == [1, 1, 2, 1, 1]
    with pytest.raises(ValueError, match="strides"):
        block_configs(DyMNSpec(strides=(2, 2, 2)))


def test_backbone_and_head_compose_to_the_model():
    """``dymn_backbone`` + ``dymn_head`` (the integrator's path) equal ``build_dymn``."""
    spec = DyMNSpec(width_mult=0.4)
    model = build_dymn(spec, mel_bins=64, seed=1)
    backbone = dymn_backbone(spec, 64, Seeds(2))
    head = dymn_head(spec, feature_channels(spec), seeds=Seeds(3))
    for part in (backbone, head):
        for layer in part.layers:
            if layer.weights:
                layer.set_weights(model.get_layer(layer.name).get_weights())
    x = np.random.default_rng(0).standard_normal((2, 96, 64, 1)).astype("float32")
    features = np.asarray(_predict(backbone, x))
    assert features.shape == (2, 3, 2, 384)  # (B, T / 32, mel / 32, C)
    want = _run(model, x)
    got = _run(head, features)
    for key in ("logits", "embedding"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-5)


def test_fully_convolutional_head():
    spec = DyMNSpec(width_mult=0.4, head_type="fully_convolutional")
    model = build_dymn(spec, mel_bins=64, num_classes=10, seed=0)
    names = {layer.name for layer in model.layers if layer.weights}
    assert {"classifier_0", "classifier_1"} <= names and "classifier_2" not in names
    x = np.random.default_rng(1).standard_normal((1, 64, 64, 1)).astype("float32")
    out = _run(model, x)
    assert out["logits"].shape == (1, 10) and out["embedding"].shape == (1, 384)
    with pytest.raises(ValueError, match="head_type"):
        build_dymn(DyMNSpec(head_type="attention"), mel_bins=64)


def test_same_seed_same_weights():
    spec = DyMNSpec(width_mult=0.4)
    a, b = (build_dymn(spec, 64, seed=5).get_weights() for _ in range(2))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    c = build_dymn(spec, 64, seed=6).get_weights()
    assert not np.array_equal(a[0], c[0])


def test_dynamic_conv_is_a_softmax_mixture_of_kernels():
    """Against a direct NumPy evaluation of the reference's forward (mix, then convolve)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 9, 6)).astype("float32")
    logits = rng.standard_normal((2, 4)).astype("float32") * 3
    att = np.exp(logits / 2.0)
    att /= att.sum(-1, keepdims=True)
    point = DynamicConv(5, 1, num_kernels=4, temperature=2.0)
    y = np.asarray(point([x, logits]))
    w = np.asarray(point.kernel)  # (K, C, O)
    want = np.einsum("bftc,bco->bfto", x, np.einsum("bk,kco->bco", att, w))
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    depth = DynamicConv(6, 3, strides=2, depthwise=True, num_kernels=4, temperature=2.0)
    y = np.asarray(depth([x, logits]))
    k = np.einsum("bk,ijck->bijc", att, np.asarray(depth.kernel))  # per-example kernels
    xp = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    want = np.zeros((2, 4, 5, 6), "float32")
    for i in range(3):
        for j in range(3):
            want += xp[:, i : i + 7 : 2, j : j + 9 : 2] * k[:, None, None, i, j]
    assert y.shape == want.shape == depth.compute_output_shape([(2, 7, 9, 6), (2, 4)])
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_dynamic_relu_is_the_max_of_linear_maps():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4, 5)).astype("float32")
    theta = rng.standard_normal((2, 20)).astype("float32")
    y = np.asarray(DynamicReLU(2)([x, theta]))
    coef = (2 / (1 + np.exp(-theta)) - 1).reshape(2, 5, 4) * [1, 1, 0.5, 0.5] + [1, 0, 0, 0]
    a, b = coef[:, None, None, :, :2], coef[:, None, None, :, 2:]
    want = np.max(x[..., None] * a + b, axis=-1)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "cls,kwargs,args",
    [
        (
            DynamicConv,
            {
                "filters": 8,
                "kernel_size": 5,
                "strides": 2,
                "depthwise": True,
                "num_kernels": 3,
                "temperature": 7.0,
            },
            [(1, 9, 9, 8), (1, 3)],
        ),
        (DynamicReLU, {"pieces": 3}, [(1, 4, 4, 8), (1, 48)]),
    ],
)
def test_layer_config_round_trip(cls, kwargs, args):
    layer = cls(**kwargs, name="probe")
    inputs = [np.random.default_rng(2).standard_normal(s).astype("float32") for s in args]
    y = np.asarray(layer(inputs))
    clone = cls.from_config(layer.get_config())
    clone(inputs)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(np.asarray(clone(inputs)), y)
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))


def test_model_serialisation_round_trip(tmp_path):
    spec = DyMNSpec(width_mult=0.4, temperature=1.0)
    model = build_dymn(spec, mel_bins=64, num_classes=7, seed=3)
    x = np.random.default_rng(3).standard_normal((2, 64, 64, 1)).astype("float32")
    want = _run(model, x)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    path = tmp_path / "dymn04.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for other in (clone, loaded):
        got = _run(other, x)
        for key in ("logits", "embedding"):
            np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-6)
    assert loaded.get_layer("layers_3_exp_conv").temperature == 1.0
