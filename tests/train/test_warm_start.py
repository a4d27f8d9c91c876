"""Warm start in the one trainer: every transfer mode from a model directory and a .pth."""

from __future__ import annotations

import os

import numpy as np
import pytest

import panns_keras
from panns_keras.models.saving import save_model_dir
from panns_keras.train.warm_start import is_head
from tests.helpers.train_data import run_py, tiny_config, write_data

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("warm_data")
    write_data(str(root / "train"))
    return str(root / "train")


@pytest.fixture(scope="module")
def init_dir(tmp_path_factory):
    """A 5-class tiny cnn6 (the tiny config's architecture) with non-trivial weights and
    BatchNorm statistics, saved as a model directory."""
    cfg = tiny_config("unused")
    model = panns_keras.build_model(
        "cnn6",
        num_classes=5,
        seed=3,
        **{k: v for k, v in cfg.model.overrides.items() if v is not None},
    )
    for i, v in enumerate(model.weights):  # kernels keep their seeded initialisation
        noise = np.random.default_rng(i).standard_normal(v.shape).astype("float32")
        if "variance" in v.path or "gamma" in v.path:
            v.assign(1.0 + 0.3 * np.abs(noise))
        elif "mean" in v.path or "beta" in v.path:
            v.assign(0.1 * noise)
    out = tmp_path_factory.mktemp("init") / "cnn6_init"
    save_model_dir(model, out, [(f"/m/{i}", f"old {i}") for i in range(5)])
    return str(out)


def _warm_config(data, init, mode, **train):
    cfg = tiny_config(data, **train)
    cfg.model.init = init
    cfg.model.mode = mode
    cfg.model.mlp_hidden = 16
    o = cfg.model.overrides  # the initial model fixes the architecture
    o.sample_rate = o.window_size = o.hop_size = o.fmax = o.mel_bins = None
    o.embedding_size = None
    return cfg


def _layer_weights(model):
    return {
        n: [np.array(w) for w in layer.get_weights()] for n, layer in model.weight_layers().items()
    }


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("mode", ["freeze_l1", "freeze_l3", "finetune", "scratch"])
def test_each_mode_from_a_model_directory(data, init_dir, mode, tmp_path):
    from panns_keras.train.trainer import train

    init = _layer_weights(panns_keras.load_model(init_dir))
    res = train(_warm_config(data, init_dir, mode, num_steps=3), tmp_path / mode)
    got = _layer_weights(res["model"])
    base = [n for n in got if not is_head(n)]
    assert sorted(base) == sorted(n for n in init if not is_head(n))
    assert all(np.isfinite(w).all() for ws in got.values() for w in ws)
    if mode.startswith("freeze"):  # frozen: bit-identical, BN statistics included
        assert all(_same(got[n], init[n]) for n in base)
    elif mode == "finetune":  # started from init, moved by training
        assert not all(_same(got[n], init[n]) for n in base)
        # BN statistics moved from the init's, but only by three updates (momentum 0.9)
        var = got["conv_block1_bn1"][3]
        assert not np.array_equal(var, init["conv_block1_bn1"][3])
    else:  # scratch: the architecture only
        assert not any(_same(got[n], init[n]) for n in base if "conv" in n)
    assert got["fc_audioset"][1].shape == (3,)
    hidden = ("mlp_1", "mlp_2")
    assert all((h in got) == (mode == "freeze_l3") for h in hidden)
    exported = panns_keras.load_model(tmp_path / mode / "model")
    assert exported.labels == ("tone 0", "tone 1", "tone 2")
    assert exported.spec.head.hidden == ((16, 16) if mode == "freeze_l3" else ())
    x = np.random.default_rng(0).normal(0, 0.1, (2, 4000)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(exported(x)["clipwise_output"]),
        np.asarray(res["model"](x)["clipwise_output"]),
        atol=1e-6,
    )


def test_base_learning_rate_scale(data, init_dir, tmp_path):
    from panns_keras.train.trainer import train

    init = _layer_weights(panns_keras.load_model(init_dir))

    def base_step(scale):
        cfg = _warm_config(data, init_dir, "finetune", num_steps=1)
        cfg.model.base_lr_scale = scale
        got = _layer_weights(train(cfg, tmp_path / str(scale))["model"])
        return np.abs(got["conv_block2_conv1"][0] - init["conv_block2_conv1"][0]).max()

    full, tenth = base_step(1.0), base_step(0.01)
    # Adam's first step moves each weight by ~lr: the scaled base moves ~100x less.
    assert full > 0 and tenth / full < 0.05, (full, tenth)


def test_warm_start_from_a_pth(tmp_path):
    """The genuine LeeNet11 checkpoint as init, freeze_l1 on 32 kHz clips."""
    from panns_keras.models.blocks import layer_name
    from panns_keras.train.trainer import train
    from tests.helpers.golden import load_golden

    write_data(str(tmp_path / "d"), clips_per_class=4, sample_rate=32000, clip=32000)
    cfg = _warm_config(
        str(tmp_path / "d"),
        os.path.join(TESTS, "assets", "ckpt", "LeeNet11_golden_zip.pth"),
        "freeze_l1",
    )
    cfg.data.sample_rate, cfg.data.clip_samples = 32000, 32000
    cfg.model.overrides.spec_augment = None
    res = train(cfg, tmp_path / "w")
    _, state, *_ = load_golden("LeeNet11")
    layers = res["model"].weight_layers()
    kernel = state["conv_block1.conv1.weight"].transpose(2, 1, 0)
    np.testing.assert_array_equal(np.asarray(layers["conv_block1_conv1"].kernel), kernel)
    bn = layers[layer_name("conv_block3.bn1")]
    np.testing.assert_array_equal(
        np.asarray(bn.moving_variance), state["conv_block3.bn1.running_var"]
    )
    assert res["model"].spec.num_classes == 3 and np.isfinite(res["loss"])


_KILL_AFTER_SAVE = """
import os, signal, sys
import tensorflow as tf
from tests.helpers.train_data import tiny_config
from panns_keras.train.trainer import train
save = tf.train.CheckpointManager.save
def save_then_die(self, *a, **k):  # SIGKILL right after the first checkpoint is written
    path = save(self, *a, **k)
    if {kill}:
        os.kill(os.getpid(), signal.SIGKILL)
    return path
tf.train.CheckpointManager.save = save_then_die
cfg = tiny_config({data!r}, num_steps=4, checkpoint_every=2)
cfg.model.init, cfg.model.mode, cfg.model.base_lr_scale = {init!r}, "finetune", 0.5
o = cfg.model.overrides
o.sample_rate = o.window_size = o.hop_size = o.fmax = o.mel_bins = o.embedding_size = None
print("STEP", train(cfg, {workdir!r})["step"])
"""


def test_resume_after_kill9_mid_finetune(data, init_dir, tmp_path):
    from panns_keras.train.trainer import train

    wd = str(tmp_path / "resumed")
    killed = run_py(_KILL_AFTER_SAVE.format(kill=True, data=data, init=init_dir, workdir=wd))
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert any(c.startswith("ckpt-2.") for c in os.listdir(os.path.join(wd, "checkpoints")))
    done = run_py(_KILL_AFTER_SAVE.format(kill=False, data=data, init=init_dir, workdir=wd))
    assert done.returncode == 0 and "STEP 4" in done.stdout, done.stderr[-2000:]
    cfg = _warm_config(data, init_dir, "finetune", num_steps=4, checkpoint_every=2)
    cfg.model.base_lr_scale = 0.5
    ref = _layer_weights(train(cfg, tmp_path / "straight")["model"])
    resumed = _layer_weights(panns_keras.load_model(os.path.join(wd, "model")))
    diff = max(float(np.max(np.abs(a - b))) for n in ref for a, b in zip(ref[n], resumed[n]))
    assert diff < 1e-6, diff


def test_mode_without_init_is_a_one_line_error(data, tmp_path):
    from panns_keras.errors import UserError
    from panns_keras.train.trainer import train

    cfg = tiny_config(data)
    cfg.model.mode = "finetune"
    with pytest.raises(UserError, match="needs config.model.init"):
        train(cfg, tmp_path)


def test_seeded_glorot_draws_numpys_uniform_per_layer():
    """The redrawn kernel is exactly NumPy's ``uniform(-limit, limit)`` of (seed, layer
    index, 6) in float32, also for a kernel larger than one drawing chunk (2**20)."""
    import keras

    from panns_keras.models.initializers import glorot_limit
    from panns_keras.train.warm_start import seeded_glorot

    small, big = keras.layers.Dense(3), keras.layers.Dense(1050)
    small.build((None, 4))
    big.build((None, 1000))
    seeded_glorot([small, big], 7)
    for i, layer in enumerate([small, big]):
        shape = tuple(layer.kernel.shape)
        limit = glorot_limit(shape)
        want = np.random.default_rng([7, i, 6]).uniform(-limit, limit, size=shape)
        np.testing.assert_array_equal(np.asarray(layer.kernel), want.astype(np.float32))
