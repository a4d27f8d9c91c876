"""EfficientAT (github.com/fschmid56/EfficientAT) models: every golden of
tests/assets/golden/efficientat reproduced within its tolerance, the reference's parameter
counts, the front end, serialisation, file-name inference and checkpoint conversion."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pytest

import panns_keras
from panns_keras.convert.golden import golden_state
from panns_keras.convert.mapping import ConversionError, assign_state_dict
from panns_keras.errors import UserError
from panns_keras.models.eat_frontend import EATLogMel, kaldi_mel_banks
from panns_keras.models.registry import MODEL_SPECS, infer_model_name

ASSETS = Path(__file__).parents[1] / "assets"
GOLDEN = ASSETS / "golden" / "efficientat"
GOLDENS = (
    "mn01",
    "mn04",
    "mn05",
    "mn10",
    "mn10_fc",
    "mn10_fc_s2221",
    "mn10_hop_5",
    "mn10_mels_64",
    "mn20",
    "mn40",
    "dymn04",
    "dymn10",
    "dymn20",
)
SLOW = {"mn20", "mn40", "dymn20"}
# The reference's published parameter counts (EfficientAT README / paper tables, millions).
# (dymn10's README figure, 10.57 M, is not the reference code's trainable count: 10,548,479,
# meta['n_params'], which the test checks exactly.)
PUBLISHED_M = {"mn04": 0.98, "mn10": 4.88, "mn40": 68.4}


def load_eat_golden(name: str):
    """(meta, state_dict, outputs, tolerances, waveform) of one EfficientAT golden."""
    z = np.load(GOLDEN / f"{name}.npz")
    meta = json.loads(str(z["meta"]))
    outputs = {k[4:]: z[k] for k in z.files if k.startswith("out/")}
    tols = {k[4:]: float(z[k]) for k in z.files if k.startswith("tol/")}
    inp = np.load(GOLDEN / meta["inputs"]["input_file"])
    waveform = inp[meta["inputs"]["key"]].astype(np.float32) / 32768
    return meta, golden_state(z, meta), outputs, tols, waveform


def trainable_params(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def check_eat_outputs(model, outputs, tols, waveform):
    """Every golden output within its tolerance; the golden's log-mel is (B, mel, T), the
    model's (B, T, mel)."""
    y = model(waveform, return_intermediates=True)
    for key, ref in outputs.items():
        got = np.asarray(y[key])
        if key == "logmel":
            got = got.transpose(0, 2, 1)
        assert got.shape == ref.shape, key
        err = float(np.max(np.abs(got - ref)))
        assert err <= tols[key], f"{key}: max |diff| {err:.3g} > tol {tols[key]:.3g}"


def _golden_params():
    for name in GOLDENS:
        yield pytest.param(name, marks=(pytest.mark.slow,) if name in SLOW else ())


@pytest.mark.parametrize("name", _golden_params())
def test_golden_outputs_and_parameter_count(name):
    meta, state, outputs, tols, waveform = load_eat_golden(name)
    spec = MODEL_SPECS[name]
    assert spec.reference == "efficientat" and meta["family"] == spec.family
    fe, ref_fe = spec.frontend, meta["frontend"]
    assert (fe.mel_bins, fe.sample_rate, fe.window_size, fe.hop_size, fe.n_fft) == (
        ref_fe["n_mels"],
        ref_fe["sr"],
        ref_fe["win_length"],
        ref_fe["hopsize"],
        ref_fe["n_fft"],
    )
    model = panns_keras.build_model(name)
    assert trainable_params(model) == meta["n_params"]
    assert model.spec.head.embedding_size == meta["output_shapes"]["embedding"][1]
    assign_state_dict(model, state)
    check_eat_outputs(model, outputs, tols, waveform)
    if name in PUBLISHED_M:
        digits = 1 if name == "mn40" else 2
        assert round(meta["n_params"] / 1e6, digits) == PUBLISHED_M[name]


def test_frontend_alone_matches_the_golden_logmel():
    """The layer by itself (no model): log-mel of two real clips, hop 10 ms and 5 ms."""
    for name, hop in (("mn04", 320), ("mn10_hop_5", 160)):
        _, _, outputs, tols, waveform = load_eat_golden(name)
        got = np.asarray(EATLogMel(hop_size=hop)(waveform)).transpose(0, 2, 1)
        assert np.max(np.abs(got - outputs["logmel"])) <= tols["logmel"]


def test_kaldi_mel_banks_shape_and_triangles():
    banks = kaldi_mel_banks(128, 1024, 32000, 0.0, 15000.0)  # (513, 128)
    assert banks.shape == (513, 128) and banks.dtype == np.float32
    assert np.all(banks[-1] == 0)  # the padded Nyquist bin
    assert np.all(banks >= 0) and np.all(banks.max(axis=0) <= 1.0)
    assert np.all(banks.sum(axis=0) > 0)  # no empty band
    # Triangles of height 1 (no area normalisation) on the 1127 ln(1 + f / 700) scale, evenly
    # spaced: between the first and the last centre, neighbours sum to exactly 1 at every bin.
    mel = 1127 * np.log1p(np.arange(513) * 32000 / 1024 / 700)
    delta = 1127 * np.log1p(15000 / 700) / 129
    inside = (mel > delta) & (mel < 128 * delta)
    np.testing.assert_allclose(banks[inside].sum(axis=1), 1.0, atol=1e-5)
    assert np.all(banks[np.arange(513) * 32000 / 1024 > 15000] == 0)
    with pytest.raises(ValueError, match="mel range"):
        kaldi_mel_banks(64, 1024, 32000, 0.0, 17000.0)


def test_frontend_frames_masks_and_config():
    layer = EATLogMel(freq_mask=20, time_mask=30, seed=1)
    x = np.random.default_rng(0).standard_normal((2, 16000)).astype("float32") * 0.1
    y = np.asarray(layer(x))
    assert y.shape == (2, 1 + (16000 - 1) // 320, 128)
    assert layer.compute_output_shape((2, 16000)) == (2, 50, 128)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), y)
    masked = np.asarray(layer(x, training=True))
    changed = masked != y
    assert changed.any()  # masked cells are log 0 -> (0 + 4.5) / 5
    np.testing.assert_allclose(masked[changed], 0.9, rtol=1e-6)
    # at most one band of < 20 bins and one span of < 30 frames per example
    for b in range(2):
        assert changed[b].all(axis=0).sum() < 20 and changed[b].all(axis=1).sum() < 30
    clone = EATLogMel.from_config(layer.get_config())
    np.testing.assert_array_equal(np.asarray(clone(x)), y)


def test_narrow_model_round_trips_through_config_and_keras_file(tmp_path):
    from panns_keras.models.tagger import AudioTagger

    for name in ("mn04", "mn10_fc_s2221"):  # at width 0.1: the same layers, narrower
        narrow = dataclasses.replace(MODEL_SPECS[name].backbone, width_mult=0.1)
        model = panns_keras.build_model(
            name, num_classes=5, seed=0, backbone=narrow, labels=[f"c{i}" for i in range(5)]
        )
        x = np.random.default_rng(1).uniform(-0.3, 0.3, (2, 20000)).astype("float32")
        y = model(x)
        assert set(y) == {"clipwise_output", "embedding"}
        assert y["clipwise_output"].shape == (2, 5)
        clone = AudioTagger.from_config(model.get_config())
        assert clone.spec == model.spec and clone.spec.reference == "efficientat"
        path = tmp_path / f"{name}.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
        assert loaded.spec == model.spec and loaded.labels == model.labels
        for key in y:
            np.testing.assert_array_equal(np.asarray(loaded(x)[key]), np.asarray(y[key]))


def test_old_config_without_reference_field_is_panns():
    from panns_keras.models.tagger import spec_from_dict

    d = MODEL_SPECS["cnn6"].to_dict()
    del d["reference"]
    assert spec_from_dict(d) == MODEL_SPECS["cnn6"]
    d = MODEL_SPECS["mn10_hop_5"].to_dict()
    assert spec_from_dict(d) == MODEL_SPECS["mn10_hop_5"]


def test_short_input_is_padded_and_training_mode_runs():
    model = panns_keras.build_model("mn04", num_classes=3, seed=0)
    assert model.spec.min_samples == 320 * 32
    y = model(np.zeros((1, 100), "float32"))
    assert y["clipwise_output"].shape == (1, 3)
    lam = np.array([0.3, 0.7, 0.6, 0.4], "float32")
    x = np.random.default_rng(0).uniform(-0.1, 0.1, (4, 32000)).astype("float32")
    out = model(x, training=True, mixup_lambda=lam)  # log-mel mixup, as the reference
    assert out["clipwise_output"].shape == (2, 3)


@pytest.mark.parametrize(
    ("filename", "name"),
    [
        ("mn10_as_mAP_471.pt", "mn10"),
        ("mn40_as_ext_mAP_487.pt", "mn40"),
        ("mn10_as_fc_s2221_mAP_466.pt", "mn10_fc_s2221"),
        ("mn10_as_hop_15_mAP_463.pt", "mn10_hop_15"),
        ("mn10_as_mels_64_mAP_461.pt", "mn10_mels_64"),
        ("mn40_as_mAP_483(2).pt", "mn40"),
        ("mn40_as_no_im_pre_mAP_482.pt", "mn40"),
        ("/x/mn04_golden.pt", "mn04"),
        ("mn10_as_fc_mAP_465.pt", "mn10_fc"),
        ("mn01_as_mAP_298.pt", "mn01"),
    ],
)
def test_infer_efficientat_names(filename, name):
    assert infer_model_name(filename) == name


def test_efficientat_hop_and_mel_variants():
    assert MODEL_SPECS["mn10_hop_15"].frontend.hop_size == 480  # 15 ms at 32 kHz
    assert MODEL_SPECS["mn10_mels_256"].frontend.mel_bins == 256
    with pytest.raises(KeyError, match="unknown part 'hop7'"):
        infer_model_name("mn10_as_hop7_mAP_400.pt")
    with pytest.raises(KeyError, match="no EfficientAT architecture mn10_mels_32"):
        infer_model_name("mn10_as_mels_32_mAP_400.pt")


@pytest.mark.parametrize("name", ["mn04", "dymn04"])
def test_released_checkpoint_converts_exactly(name, tmp_path):
    """ckpt/<name>_golden.pt (torch.save(state_dict), the released files' format) through the
    converter, architecture from the file name: the golden's outputs, the golden's weights."""
    from panns_keras.convert.converter import convert_checkpoint, load_checkpoint_into_model

    out = convert_checkpoint(ASSETS / "ckpt" / f"{name}_golden.pt", tmp_path / name)
    model = panns_keras.load_model(out)
    assert model.spec.name == name and model.labels[0] == "Speech"
    # the registry's architecture (a golden file: no temperature change)
    assert model.spec.backbone == MODEL_SPECS[name].backbone
    assert model.spec.frontend == MODEL_SPECS[name].frontend
    _, state, outputs, tols, waveform = load_eat_golden(name)
    check_eat_outputs(model, outputs, tols, waveform)
    direct = panns_keras.build_model(name)
    assign_state_dict(direct, state)
    assert len(direct.weights) == len(model.weights)
    for a, b in zip(direct.weights, model.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    if name == "mn04":
        with pytest.raises(UserError, match=r"features.2.block.0.0 \(kernel\) has shape"):
            load_checkpoint_into_model(ASSETS / "ckpt" / "mn04_golden.pt", "mn05")


def test_released_dymn_audioset_files_run_at_temperature_one(tmp_path):
    """The reference loads a released dymn AudioSet checkpoint at temperature 1
    (``pretrain_final_temp``); a golden / fresh model keeps get_model's 30."""
    from panns_keras.convert.converter import load_checkpoint_into_model

    released = tmp_path / "dymn04_as.pt"
    released.write_bytes((ASSETS / "ckpt" / "dymn04_golden.pt").read_bytes())
    model = load_checkpoint_into_model(released)
    assert model.spec.name == "dymn04" and model.spec.backbone.temperature == 1.0
    assert MODEL_SPECS["dymn04"].backbone.temperature == 30.0
    assert infer_model_name("dymn20_as_mAP_493.pt") == "dymn20"


def test_unconsumed_or_missing_keys_fail_loudly():
    _, state, _, _, _ = load_eat_golden("mn04")
    model = panns_keras.build_model("mn04")
    extra = dict(state, **{"classifier.9.weight": np.zeros((3,), "float32")})
    with pytest.raises(ConversionError, match="unexpected tensor.*classifier.9.weight"):
        assign_state_dict(model, extra)
    missing = {k: v for k, v in state.items() if not k.startswith("features.3.block.2")}
    with pytest.raises(ConversionError, match="lacks .*features_3_block_2"):
        assign_state_dict(model, missing)


@pytest.mark.parametrize("mode", ["finetune", "freeze_l1", "freeze_l3"])
def test_transfer_modes_replace_the_reference_classifier(mode):
    """A new label set replaces classifier.5 (the reference's own rule when its class count
    differs); freeze_l3 adds mlp_1, mlp_2 before it; frozen modes train the head only."""
    from panns_keras.train.warm_start import transfer_model

    narrow = dataclasses.replace(MODEL_SPECS["mn04"].backbone, width_mult=0.1)
    init = panns_keras.build_model("mn04", backbone=narrow, seed=0)
    model = transfer_model(init, 3, mode, hidden=8, seed=1)
    layers, theirs = model.weight_layers(), init.weight_layers()
    assert layers["classifier_5"].kernel.shape[-1] == 3
    assert ("mlp_1" in layers and "mlp_2" in layers) == (mode == "freeze_l3")
    same = np.array_equal(
        layers["features_1_block_0_0"].kernel, theirs["features_1_block_0_0"].kernel
    )
    assert same == (mode != "scratch")
    trainable = {n for n, layer in layers.items() if layer.trainable_weights}
    if mode.startswith("freeze"):
        assert trainable == {"classifier_5"} | (
            {"mlp_1", "mlp_2"} if mode == "freeze_l3" else set()
        )
    x = np.random.default_rng(0).uniform(-0.1, 0.1, (2, 16000)).astype("float32")
    assert model(x)["clipwise_output"].shape == (2, 3)
