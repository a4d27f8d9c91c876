"""Teacher predictions stored with the data: `panns-keras teach` end to end (in-process CLI),
its resume, the pipeline carrying each clip's teacher logits in every sampling mode, the
one-line errors, a distilling training run killed and resumed, and finetune --teacher."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.helpers.teacher_data import make_teacher, tiny_teacher
from tests.helpers.train_data import NUM_CLASSES, run_py, tiny_config, write_data


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    write_data(str(root / "train"))
    model_dir = tiny_teacher(str(root / "teacher_model"))
    return str(root / "train"), model_dir


def _teacher_logits(model_dir, data_dir):
    """{clip_id: float32 logits} of the teacher, computed here directly."""
    import tensorflow as tf

    from panns_keras import load_model
    from panns_keras.data import schema

    model = load_model(model_dir)
    out = {}
    for f in sorted(os.listdir(data_dir)):
        if not f.endswith(".tfrecord"):
            continue
        for rec in tf.data.TFRecordDataset(os.path.join(data_dir, f)).as_numpy_iterator():
            ex = schema.example_to_numpy(rec)
            wav = schema.int16_to_float(ex["audio"])[None]
            z = model(wav, training=False, return_intermediates=True)["logits"]
            out[ex["clip_id"]] = np.asarray(z, np.float32)[0]
    return out


def test_teach_cli_writes_float16_logits_keyed_by_clip_and_resumes(shards, tmp_path, cli):
    from panns_keras.data import teacher as fmt

    data, model_dir = shards
    out = tmp_path / "teacher"
    r = cli(
        "teach",
        f"--model={model_dir},{model_dir}",
        f"--data={data}",
        f"--out={out}",
        "--batch_size=5",
    )
    assert r.returncode == 0, r.stderr
    assert "24 clips in 3 shard(s) (3 written, 0 kept)" in r.stdout, r.stdout
    meta = json.loads((out / fmt.TEACHER_NAME).read_text())
    assert meta["num_classes"] == NUM_CLASSES and meta["dtype"] == "float16"
    assert [m["model"] for m in meta["models"]] == ["cnn6", "cnn6"]
    assert len(meta["models"][0]["weights_sha256"]) == 64
    assert meta["combine"].startswith("mean")
    want = _teacher_logits(model_dir, data)
    seen = {}
    for e in meta["shards"]:
        rows = fmt.read_predictions(str(out / e["file"]))
        assert len(rows) == e["num_clips"] == 8
        for clip_id, z in rows:
            assert z.dtype == np.float16 and z.shape == (NUM_CLASSES,)
            seen[clip_id] = z.astype(np.float32)
    assert sorted(seen) == sorted(want)
    for clip_id, z in want.items():  # the mean of two copies of one teacher == the teacher
        np.testing.assert_allclose(seen[clip_id], z, rtol=2e-3, atol=2e-3)

    # Resume: an interrupted run left one shard without its predictions file.
    first = out / meta["shards"][0]["file"]
    mtimes = {e["file"]: os.stat(out / e["file"]).st_mtime_ns for e in meta["shards"]}
    first.unlink()
    r = cli("teach", f"--model={model_dir},{model_dir}", f"--data={data}", f"--out={out}")
    assert r.returncode == 0 and "(1 written, 2 kept)" in r.stdout, (r.stdout, r.stderr)
    for e in meta["shards"][1:]:
        assert os.stat(out / e["file"]).st_mtime_ns == mtimes[e["file"]]  # kept untouched
    assert first.is_file()
    assert json.loads((out / fmt.TEACHER_NAME).read_text())["shards"] == meta["shards"]


def test_teach_errors_are_one_line(shards, tmp_path, cli):
    data, model_dir = shards
    r = cli("teach", f"--model={model_dir}", f"--data={tmp_path}/none", f"--out={tmp_path}/o")
    assert r.returncode == 1 and "no TFRecord shards" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = cli("teach", f"--data={data}", f"--out={tmp_path}/o")
    assert r.returncode == 2 and "--model: required" in r.stderr
    r = cli("teach", "--help")
    assert r.returncode == 0 and "--batch_size" in r.stdout and "--model" in r.stdout


@pytest.fixture(scope="module")
def taught(shards, tmp_path_factory):
    data, model_dir = shards
    out = str(tmp_path_factory.mktemp("taught") / "teacher")
    make_teacher(data, out, model_dir)
    return data, out


def _stored(out):
    from panns_keras.data import teacher as fmt

    meta = fmt.read_teacher(out)
    return {
        c: z.astype(np.float32)
        for e in meta["shards"]
        for c, z in fmt.read_predictions(os.path.join(out, e["file"]))
    }


@pytest.mark.parametrize("balanced", [True, False])
def test_pipeline_carries_each_clips_teacher_logits(taught, balanced):
    """Balanced and shuffled sampling, with mixup's 2B clips: every row's teacher logits are
    the stored ones of that very clip (identified by its waveform)."""
    import tensorflow as tf

    from panns_keras.data import schema
    from panns_keras.data.pipeline import make_train_dataset

    data, out = taught
    stored = _stored(out)
    by_wave = {}
    for f in sorted(os.listdir(data)):
        if f.endswith(".tfrecord"):
            for rec in tf.data.TFRecordDataset(os.path.join(data, f)).as_numpy_iterator():
                ex = schema.example_to_numpy(rec)
                by_wave[ex["audio"][:64].tobytes()] = ex["clip_id"]
    cfg = tiny_config(data, batch_size=4)
    cfg.data.balanced = balanced
    cfg.data.teacher = out
    rows = 0
    for batch in make_train_dataset(cfg).take(6).as_numpy_iterator():
        assert batch["teacher_logits"].shape == (8, NUM_CLASSES)
        assert batch["teacher_logits"].dtype == np.float32
        pcm = np.round(batch["waveform"] * schema.INT16_SCALE).astype(np.int16)
        for wav, z in zip(pcm, batch["teacher_logits"]):
            clip_id = by_wave[wav[:64].tobytes()]
            np.testing.assert_array_equal(z, stored[clip_id])
            rows += 1
    assert rows == 48


def test_pipeline_with_two_input_pipelines_and_folds(taught):
    """Sharded over 2 input pipelines (multi-replica) and excluding a fold: logits still
    follow their clips."""
    import tensorflow as tf

    from panns_keras.data.pipeline import make_train_dataset

    data, out = taught
    stored = _stored(out)
    cfg = tiny_config(data, batch_size=4)
    cfg.data.teacher = out
    cfg.data.mixup = "none"
    cfg.data.balanced = False
    ctx = tf.distribute.InputContext(
        num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2
    )
    values = {tuple(v.tolist()) for v in stored.values()}
    for batch in make_train_dataset(cfg, ctx).take(3).as_numpy_iterator():
        assert batch["teacher_logits"].shape == (2, NUM_CLASSES)
        for z in batch["teacher_logits"]:
            assert tuple(z.tolist()) in values


def test_missing_predictions_is_one_line_naming_the_shard(taught, tmp_path):
    import shutil

    from panns_keras.errors import UserError
    from panns_keras.train import inputs

    data, out = taught
    extra = tmp_path / "data"
    shutil.copytree(data, extra)
    write_data(str(extra), clips_per_class=2, name="more", seed=5)  # shards teach never saw
    cfg = tiny_config(str(extra))
    cfg.data.teacher = out
    with pytest.raises(UserError) as e:
        inputs.check_shards(cfg, 8000)
    msg = str(e.value)
    assert msg.startswith(str(extra / "more-00000-of-00003.tfrecord") + ": no teacher "), msg
    assert "\n" not in msg and "panns-keras teach" in msg
    # a changed shard (re-prepared) is caught too
    cfg = tiny_config(data)
    cfg.data.teacher = str(tmp_path / "nothing")
    with pytest.raises(UserError, match="teacher predictions folder not found"):
        inputs.check_shards(cfg, 8000)
    cfg.data.teacher = ""
    cfg.train.distill.weight = 0.5
    from panns_keras.train.config import validate

    with pytest.raises(UserError, match="config.data.teacher is empty"):
        validate(cfg)


_RUN = """
import os, signal
from tests.helpers.train_data import tiny_config
from panns_keras.train.trainer import train


def kill_at(step):  # kill -9 of this process right after step {kill_at} (0: never)
    if step == {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)


cfg = tiny_config({data!r}, num_steps={steps}, checkpoint_every=2)
cfg.data.teacher = {teacher!r}
r = train(cfg, {workdir!r}, on_step=kill_at)
print("STEP", r["step"], r["loss"])
"""


def test_distilling_resume_after_kill9_matches_uninterrupted(taught, tmp_path):
    """The tf.data iterator (shards zipped with their predictions) is checkpointed with the
    model: killed after step 3, resumed from step 2, the weights equal a straight run's."""
    from panns_keras import load_model
    from panns_keras.train.trainer import train
    from tests.helpers.train_data import read_events

    data, out = taught
    wd = str(tmp_path / "resumed")
    killed = run_py(_RUN.format(data=data, teacher=out, steps=5, workdir=wd, kill_at=3))
    assert killed.returncode == -9, killed.stderr[-2000:]
    done = run_py(_RUN.format(data=data, teacher=out, steps=5, workdir=wd, kill_at=0))
    assert done.returncode == 0 and "STEP 5" in done.stdout, done.stderr[-2000:]
    cfg = tiny_config(data, num_steps=5, checkpoint_every=2)
    cfg.data.teacher = out
    ref = train(cfg, tmp_path / "straight")
    resumed = load_model(os.path.join(wd, "model"))
    diff = max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
        for a, b in zip(ref["model"].weights, resumed.weights)
    )
    assert diff < 1e-6, diff
    scalars = read_events(tmp_path / "straight")["train"]
    label = scalars["label_loss"]["steps"][5]
    teacher = scalars["teacher_loss"]["steps"][5]
    assert scalars["loss"]["steps"][5] == pytest.approx(0.1 * label + 0.9 * teacher, rel=1e-5)
    assert label != pytest.approx(teacher)


def test_finetune_teacher_flag(taught, shards, tmp_path, cli):
    """`finetune --teacher` distils in a transfer mode; probe refuses it in one line."""
    import shutil

    from tests.helpers.train_data import read_events

    data, out = taught
    _, model_dir = shards
    prepared = tmp_path / "prepared"  # the same shards, with a manifest as prepare writes it
    shutil.copytree(data, prepared)
    manifest = json.loads((prepared / "manifest.json").read_text())
    manifest.update(version=2, sample_rate=8000, clip_samples=4000, num_classes=NUM_CLASSES)
    (prepared / "manifest.json").write_text(json.dumps(manifest))
    data = str(prepared)
    r = cli(
        "finetune",
        f"--data={data}",
        f"--model={model_dir}",
        f"--out={tmp_path}/ft",
        f"--teacher={out}",
        "--mode=freeze_l1",
        "--folds=none",
        "--config.train.num_steps=2",
        "--config.train.batch_size=4",
        "--config.train.log_every=1",
        "--config.data.shuffle_buffer=8",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    cfg = json.loads((tmp_path / "ft" / "split_all" / "config.json").read_text())
    assert cfg["data"]["teacher"] == out
    assert "teacher_loss" in read_events(tmp_path / "ft" / "split_all")["train"]
    r = cli(
        "finetune",
        f"--data={data}",
        f"--model={model_dir}",
        f"--out={tmp_path}/p",
        f"--teacher={out}",
        "--mode=probe",
    )
    assert r.returncode == 2 and "--teacher: mode probe" in r.stderr, r.stderr
