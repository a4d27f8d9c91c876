"""Trainer: determinism, resume after kill -9, TensorBoard scalars, config errors, evaluate."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest

from tests.helpers.train_data import REPO, run_py, tiny_config, write_data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_data")
    write_data(str(root / "train"))
    write_data(str(root / "eval"), clips_per_class=4, name="eval", seed=1)
    return str(root / "train"), str(root / "eval")


def _weights(model):
    return [np.array(v) for v in model.weights]


def _max_diff(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def test_same_seed_same_weights_and_summaries(data, tmp_path):
    import tensorflow as tf

    from panns_keras.train.trainer import train

    cfg = tiny_config(*data, num_steps=3, image_every=2)
    cfg.eval.every = 3
    r1 = train(cfg, tmp_path / "a")
    r2 = train(tiny_config(*data, num_steps=3, image_every=2), tmp_path / "b")
    assert _max_diff(_weights(r1["model"]), _weights(r2["model"])) == 0.0
    assert r1["step"] == 3 and np.isfinite(r1["loss"])

    def tags(sub):
        found = set()
        for f in glob.glob(str(tmp_path / "a" / sub / "events.out.tfevents.*")):
            for ev in tf.compat.v1.train.summary_iterator(f):
                found.update(v.tag for v in ev.summary.value)
        return found

    train_tags, eval_tags = tags("train"), tags("eval")
    for tag in ("loss", "learning_rate", "clips_per_second", "config", "train_audio"):
        assert tag in train_tags, (tag, train_tags)
    assert any(t.startswith("train_logmel") for t in train_tags), train_tags
    for tag in ("mAP", "mean_AUC", "d_prime", "classes_by_AP"):
        assert tag in eval_tags, (tag, eval_tags)
    assert json.loads((tmp_path / "a" / "config.json").read_text())["train"]["num_steps"] == 3
    best = json.loads((tmp_path / "a" / "best" / "config.json").read_text())
    assert best["eval"]["mAP"] == pytest.approx(r1["best_map"])


_RUN = """
import os, signal, sys
from tests.helpers.train_data import tiny_config
from panns_keras.train.trainer import train


def kill_at(step):  # kill -9 of this process right after step {kill_at} (0: never)
    if step == {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)


cfg = tiny_config({data!r}, num_steps={steps}, checkpoint_every=2)
r = train(cfg, {workdir!r}, on_step=kill_at)
print("STEP", r["step"])
"""


def test_resume_after_kill9_matches_uninterrupted(data, tmp_path):
    from panns_keras import load_model
    from panns_keras.train.trainer import train

    wd = str(tmp_path / "resumed")
    killed = run_py(_RUN.format(data=data[0], steps=5, workdir=wd, kill_at=3))
    assert killed.returncode == -9, killed.stderr[-2000:]
    ckpts = sorted(os.listdir(os.path.join(wd, "checkpoints")))
    assert any(c.startswith("ckpt-2.") for c in ckpts) and not any("ckpt-4" in c for c in ckpts)
    done = run_py(_RUN.format(data=data[0], steps=5, workdir=wd, kill_at=0))
    assert done.returncode == 0 and "STEP 5" in done.stdout, done.stderr[-2000:]

    ref = train(tiny_config(data[0], num_steps=5, checkpoint_every=2), tmp_path / "straight")
    resumed = load_model(os.path.join(wd, "model"))
    diff = _max_diff(_weights(ref["model"]), _weights(resumed))
    assert diff < 1e-6, diff


def test_missing_override_field_is_one_line_error(tmp_path, cli):
    # From outside the checkout: the packaged recipe is found by name.
    p = cli(
        "train",
        "--config=demo",
        "--config.train.no_such_field=1",
        f"--out={tmp_path}",
        cwd=tmp_path,
    )
    assert p.returncode != 0
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("panns-keras train: error: --config.train.no_such_field: ")
    assert "no such field in " in lines[0] and "configs/demo.py" in lines[0]


def test_config_files_load(tmp_path):
    from panns_keras import configs
    from panns_keras.errors import UserError

    assert configs.names() == ["audioset", "audioset_balanced", "demo", "finetune"]
    cases = [
        ("audioset:cnn14", "cnn14"),
        ("audioset_balanced:mobilenet_v1", "mobilenet_v1"),
        ("demo", "cnn6"),
        ("configs/demo.py", "cnn6"),
    ]
    for spec, model in cases:
        cfg = configs.get_config(spec)
        assert cfg.model.name == model
        assert cfg.train.batch_size > 0 and cfg.data.mixup == "in_model"
    assert configs.get_config("audioset:cnn14").train.num_steps == 600_000
    # A file of one's own, by path, with an argument.
    own = tmp_path / "mine.py"
    own.write_text(
        "from panns_keras.configs.demo import get_config as demo\n\n"
        "def get_config(arg):\n    c = demo()\n    c.train.num_steps = int(arg)\n"
        "    return c\n"
    )
    assert configs.get_config(f"{own}:7").train.num_steps == 7
    assert configs.resolve(f"{own}:7") == (str(own), "7")
    with pytest.raises(UserError, match="^nope.py: no such config file or packaged recipe"):
        configs.resolve("nope.py:cnn14")


def test_packaged_config_from_any_directory(tmp_path, cli):
    """--config=NAME:ARG works outside the checkout (a one-line error for an unknown one)."""
    p = cli("train", "--config=nope:cnn6", f"--out={tmp_path}", cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.strip() == (
        "panns-keras train: error: nope: no such config file or packaged recipe (packaged: "
        "audioset, audioset_balanced, demo, finetune; or give a path to a .py file with "
        "get_config(arg))"
    )


def test_evaluate_cli_writes_report(data, tmp_path, cli):
    from panns_keras.train.trainer import train

    train(tiny_config(*data, num_steps=2), tmp_path / "wd")
    out = tmp_path / "report"
    p = cli(
        "evaluate",
        f"--model={tmp_path / 'wd'}",
        f"--data={data[1]}/*.tfrecord",
        f"--out={out}",
        cwd=REPO,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert "mAP" in p.stdout and "d-prime" in p.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["mAP"] <= 1.0 and metrics["num_clips"] == 12
    rows = (out / "per_class.csv").read_text().splitlines()
    assert rows[0] == "index,display_name,ap,auc,positives,excluded" and len(rows) == 4
    assert rows[1].startswith("0,tone 0,")
    assert (out / "per_class_ap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bce_on_probabilities_has_finite_gradients_when_saturated():
    """p == 1.0 or 0.0 exactly (a saturated float32 sigmoid): torch's values (each log term
    clamped at -100) and finite gradients (the plain max(log(p), -100) gives 0 * inf = NaN).
    The step's loss (train/step.py) is train/losses.py's, on every backend."""
    import tensorflow as tf

    from panns_keras.train.step import per_example_loss

    p = tf.Variable([[0.0, 1.0, 0.3, 1e-45, 0.999]])
    y = tf.constant([[1.0, 0.0, 1.0, 0.0, 1.0]])
    with tf.GradientTape() as tape:
        loss = per_example_loss(y, {"clipwise_output": p}, "bce_prob")
    grad = tape.gradient(loss, p).numpy()
    want = -np.mean([-100.0, -100.0, np.log(0.3), np.log1p(-1e-45), np.log(0.999)])
    np.testing.assert_allclose(loss.numpy(), [want], rtol=1e-6)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad[0, [2, 4]], [-1 / 0.3 / 5, -1 / 0.999 / 5], rtol=1e-5)
