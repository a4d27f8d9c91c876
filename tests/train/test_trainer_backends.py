"""The one trainer on both Keras backends: JAX training like TensorFlow's, a run stopped by
SIGTERM exits 143 and resumes to the same weights, data faults end in one line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from panns_keras.errors import UserError
from tests.helpers.train_data import REPO, run_py, tiny_config, write_data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("backend_data")
    write_data(str(root / "train"))
    write_data(str(root / "eval"), clips_per_class=4, name="eval", seed=1)
    return str(root / "train"), str(root / "eval")


_TRAIN = """
import json, os, signal, sys
import numpy as np
from tests.helpers.train_data import tiny_config
from panns_keras.train.trainer import train

cfg = tiny_config({train!r}, {eval!r}, num_steps={steps}, checkpoint_every=2)
cfg.eval.every = {steps}
r = train(cfg, {workdir!r})
w = np.concatenate([np.ravel(np.asarray(v)) for v in r["model"].weights])
np.save({workdir!r} + "/weights.npy", w)
# The evaluation that finetune, `panns-keras evaluate` and the demo run after training.
from panns_keras.data.pipeline import make_eval_dataset
from panns_keras.train import evaluation
again = evaluation.evaluate(evaluation.make_predict_fn(r["model"]), make_eval_dataset(cfg))
print("RESULT", json.dumps({{"step": r["step"], "loss": r["loss"], "mAP": r["eval"]["mAP"],
                            "mAP_again": again["mAP"], "backend": r["backend"]}}))
"""


def _result(proc) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def test_jax_trains_like_tensorflow(data, tmp_path):
    """Same config and seed on both backends: the same model directory layout, losses and
    held-out mAP close (the step is the same keras.ops code; kernels differ in rounding)."""
    res = {}
    for backend in ("tensorflow", "jax"):
        wd = str(tmp_path / backend)
        code = _TRAIN.format(train=data[0], eval=data[1], steps=12, workdir=wd)
        res[backend] = _result(run_py(code, env={"KERAS_BACKEND": backend}, timeout=600))
        assert res[backend]["backend"] == backend and res[backend]["step"] == 12
        assert res[backend]["mAP_again"] == pytest.approx(res[backend]["mAP"], abs=1e-6)
        cfg = json.loads((tmp_path / backend / "model" / "config.json").read_text())
        assert cfg["step"] == 12 and "eval" in cfg
    tf_res, jax_res = res["tensorflow"], res["jax"]
    assert abs(tf_res["mAP"] - jax_res["mAP"]) <= 0.05, res
    assert jax_res["mAP"] > 0.5, res  # 3 classes: chance is about 0.33
    # Same seed, same initial weights on both backends (train/warm_start.seeded_glorot).
    assert abs(tf_res["loss"] - jax_res["loss"]) <= 0.01 * tf_res["loss"], res
    # JAX's checkpoints are .npz files, newest N kept.
    ckpts = sorted(os.listdir(tmp_path / "jax" / "checkpoints"))
    assert ckpts == ["ckpt-10.npz", "ckpt-12.npz", "ckpt-8.npz"], ckpts
    # The model directory trained on JAX loads and scores under TensorFlow.
    from panns_keras import load_model

    model = load_model(str(tmp_path / "jax" / "model"))
    w = np.concatenate([np.ravel(np.asarray(v)) for v in model.weights])
    np.testing.assert_array_equal(w, np.load(tmp_path / "jax" / "weights.npy"))


_STOP_AT = """
import os, signal, sys
from panns_keras.train import trainer

original = trainer.train


def train(config, workdir, on_step=None):
    def hook(step):  # SIGTERM to this process right after step {stop_at} (0: never)
        if step == {stop_at}:
            os.kill(os.getpid(), signal.SIGTERM)
    return original(config, workdir, on_step=hook)


trainer.train = train
from panns_keras.cli import main

sys.exit(main(["panns-keras", "train", "--config={config}", "--out={workdir}"]))
"""

_CONFIG_FILE = """
from tests.helpers.train_data import tiny_config


def get_config():
    c = tiny_config({train!r}, num_steps=6, checkpoint_every=100)
    c.train.progress = False
    return c
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_sigterm_exits_143_and_rerun_resumes_exactly(data, tmp_path, backend):
    config = tmp_path / "cfg.py"
    config.write_text(_CONFIG_FILE.format(train=data[0]))
    env = {"KERAS_BACKEND": backend}

    def run(workdir, stop_at):
        code = _STOP_AT.format(stop_at=stop_at, config=config, workdir=workdir)
        return run_py(code, env=env, timeout=600)

    stopped = run(tmp_path / "a", 3)
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    lines = stopped.stderr.strip().splitlines()
    assert "stopped at step 3 by signal 15" in lines[-1] and "run the same command" in lines[-1]
    assert not (tmp_path / "a" / "model").exists()  # not finished: no final model directory
    resumed = run(tmp_path / "a", 0)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "trained to step 6" in resumed.stdout
    straight = run(tmp_path / "b", 0)
    assert straight.returncode == 0, straight.stderr[-2000:]

    from panns_keras import load_model

    a = load_model(str(tmp_path / "a" / "model"))
    b = load_model(str(tmp_path / "b" / "model"))
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_allclose(np.asarray(va), np.asarray(vb), rtol=0, atol=1e-6)


def _cli(args, env=None, timeout=300):
    full_env = dict(
        os.environ,
        PYTHONPATH=REPO,
        TF_CPP_MIN_LOG_LEVEL="3",
        CUDA_VISIBLE_DEVICES="",
        **(env or {}),
    )
    command = [sys.executable, "-m", "panns_keras", *args]
    return subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=timeout)


def _one_line_error(proc, *needles):
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr[-2000:]
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_corrupt_shard_is_one_line_naming_it(data, tmp_path, backend):
    bad = tmp_path / "bad"
    write_data(str(bad), clips_per_class=40)
    shard = sorted(p for p in os.listdir(bad) if p.endswith(".tfrecord"))[1]
    path = bad / shard
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])  # truncated in the middle of a record
    config = tmp_path / "cfg.py"
    config.write_text(_CONFIG_FILE.format(train=str(bad)).replace("num_steps=6", "num_steps=60"))
    proc = _cli(
        [
            "train",
            f"--config={config}",
            f"--out={tmp_path / 'run'}",
            "--config.data.balanced=false",
        ],
        env={"KERAS_BACKEND": backend},
    )
    _one_line_error(proc, shard, "corrupted or truncated", "--config.data.skip_corrupt=true")


_WITHOUT_KERAS = """
import sys
sys.modules["tensorflow"] = sys.modules["keras"] = None  # importing either now fails
from panns_keras.cli import main
sys.exit(main(["panns-keras", *sys.argv[1:]]))
"""


def _cli_without_keras(args):
    """The CLI in a process where importing TensorFlow or Keras fails: what it reports here
    it reports before either loads."""
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_KERAS, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_data_mistakes_are_one_line(data, tmp_path):
    config = tmp_path / "cfg.py"
    config.write_text(_CONFIG_FILE.format(train=data[0]))
    out = f"--out={tmp_path / 'run'}"
    nothing = f"--config.data.train_files={tmp_path}/nothing-*.tfrecord"
    empty = _cli_without_keras(["train", f"--config={config}", out, nothing])
    _one_line_error(empty, "nothing-*.tfrecord", "matches no TFRecord file")

    labels = tmp_path / "labels.csv"
    labels.write_text("index,mid,display_name\n0,/m/a,a\n1,/m/b,b\n")
    wrong_labels = _cli_without_keras(
        ["train", f"--config={config}", out, f"--config.data.labels={labels}"]
    )
    _one_line_error(wrong_labels, str(labels), "2 labels for num_classes=3")

    other_rate = tmp_path / "other_rate"
    write_data(str(other_rate))
    manifest = json.loads((other_rate / "manifest.json").read_text())
    (other_rate / "manifest.json").write_text(json.dumps({**manifest, "sample_rate": 16000}))
    rate = _cli_without_keras(
        ["train", f"--config={config}", out, f"--config.data.train_files={other_rate}/*.tfrecord"]
    )
    _one_line_error(rate, "manifest.json", "16000 Hz", "config.data.sample_rate is 8000")
    # The trainer's own checks (the Python API, the same messages), after the model is built.
    from panns_keras.train.trainer import train

    for field, value, needle in [
        ("train_files", f"{tmp_path}/nothing-*.tfrecord", "matches no TFRecord file"),
        ("labels", str(labels), "2 labels for num_classes=3"),
        ("train_files", f"{other_rate}/*.tfrecord", "config.data.sample_rate is 8000"),
    ]:
        cfg = tiny_config(data[0], num_steps=2)
        cfg.data[field] = value
        with pytest.raises(UserError, match=re.escape(needle)):
            train(cfg, str(tmp_path / f"api_{field}"))


def test_bfloat16_without_cpu_support_says_so_in_one_line(monkeypatch, caplog):
    from panns_keras.train import trainer

    monkeypatch.setattr(trainer, "cpu_has_bfloat16", lambda: False)
    with caplog.at_level("WARNING"):
        trainer._warn_precision("mixed_bfloat16", "cpu")
        trainer._warn_precision("float32", "cpu")
        trainer._warn_precision("mixed_bfloat16", "gpu")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "no bfloat16" in lines[0] and "precision=float32" in lines[0]
    monkeypatch.setattr(trainer, "cpu_has_bfloat16", lambda: True)
    caplog.clear()
    trainer._warn_precision("mixed_bfloat16", "cpu")
    assert not caplog.records


def test_synthetic_source_trains_without_data(tmp_path):
    """``data.source=synthetic``: the trainer runs on one random batch made on the device (no
    shards; under `make test-jax` also without TensorFlow, summaries then as JSON lines)."""
    import importlib.util

    import keras

    from panns_keras.train.trainer import train

    cfg = tiny_config("", num_steps=3, checkpoint_every=2)
    cfg.data.source = "synthetic"
    cfg.data.train_files = ""
    cfg.train.progress = False
    r = train(cfg, tmp_path / "run")
    assert r["step"] == 3 and np.isfinite(r["loss"]) and r["backend"] == keras.backend.backend()
    assert (tmp_path / "run" / "model" / "config.json").is_file()
    names = os.listdir(tmp_path / "run" / "checkpoints")
    assert any(n.startswith("ckpt-3.") for n in names), names  # .index (TF) or .npz (JAX)
    if importlib.util.find_spec("tensorflow") is None:
        text = (tmp_path / "run" / "summaries.jsonl").read_text()
        rows = [json.loads(x) for x in text.splitlines() if x.strip()]
        losses = [r["value"] for r in rows if r.get("tag") == "loss" and r.get("run") == "train"]
        assert len(losses) == 3 and all(np.isfinite(losses)), rows[:5]
    # A second run of the same workdir has nothing left to do.
    again = train(cfg, tmp_path / "run")
    assert again["step"] == 3 and again["eval"] is None


_DATA_PARALLEL = """
import json, numpy as np
from tests.helpers.train_data import tiny_config
from panns_keras.train.trainer import train
import jax

cfg = tiny_config({train!r}, num_steps=3, checkpoint_every=100)
cfg.train.progress = False
cfg.train.strategy = {strategy!r}
r = train(cfg, {workdir!r})
w = np.concatenate([np.ravel(np.asarray(v)) for v in r["model"].weights])
np.save({workdir!r} + "/weights.npy", w)
print("RESULT", json.dumps({{"devices": len(jax.local_devices()), "loss": r["loss"]}}))
"""


def test_jax_data_parallel_over_two_devices_equals_one(data, tmp_path):
    """KERAS_BACKEND=jax with two (CPU) devices: keras.distribution.DataParallel splits the
    global batch; the step sees the whole batch (BatchNorm over the global batch), so the
    weights equal a one-device run's to float rounding."""
    env = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    res = {}
    for strategy in ("default", "auto"):  # default: one device; auto: DataParallel
        wd = str(tmp_path / strategy)
        code = _DATA_PARALLEL.format(train=data[0], strategy=strategy, workdir=wd)
        res[strategy] = _result(run_py(code, env=env, timeout=600))
    assert res["auto"]["devices"] == 2
    one = np.load(tmp_path / "default" / "weights.npy")
    two = np.load(tmp_path / "auto" / "weights.npy")
    # Equal to float rounding, but for the few elements whose near-zero gradient changed sign
    # in the other summation order (each moves up to 2 lr per Adam step; see
    # tests/assets/golden/train/README.md, section 6).
    off = np.abs(two - one) > 2e-5
    assert off.mean() < 1e-4, off.sum()
    assert np.abs(two - one).max() <= 3 * 2 * 1e-3
    assert abs(res["auto"]["loss"] - res["default"]["loss"]) < 1e-3 * res["default"]["loss"]


def test_both_engines_implement_the_engine_protocol():
    """Every method and property of ``backends.engine.Engine`` exists on both engines with the
    same parameters, and each engine names its Keras backend."""
    import inspect

    pytest.importorskip("tensorflow")
    pytest.importorskip("jax")
    from panns_keras.train.backends.engine import Engine
    from panns_keras.train.backends.jax_engine import JaxEngine
    from panns_keras.train.backends.tf_engine import TFEngine

    members = {n: v for n, v in vars(Engine).items() if not n.startswith("_") or n == "__init__"}
    members = {n: v for n, v in members.items() if callable(v) or isinstance(v, property)}
    assert {"build", "start", "train_step", "sync", "save_checkpoint", "close", "step"} <= set(
        members
    )
    for engine, backend in ((TFEngine, "tensorflow"), (JaxEngine, "jax")):
        assert engine.backend == backend
        for name, want in members.items():
            got = inspect.getattr_static(engine, name)
            if isinstance(want, property):
                assert isinstance(got, property), f"{engine.__name__}.{name}: not a property"
                continue
            params = list(inspect.signature(got).parameters)
            assert params == list(inspect.signature(want).parameters), f"{engine.__name__}.{name}"
