"""TensorBoard read-back: hparams, PR curves, per-class AP image, eval loss beside train loss,
`evaluate`'s event files, tag names, profiler trace; and the JSON-lines log without TF."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest

from tests.helpers.train_data import HPARAMS_TAG, read_events, run_py, tiny_config, write_data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("summaries_data")
    write_data(str(root / "train"))
    write_data(str(root / "eval"), clips_per_class=4, name="eval", seed=1)
    return str(root / "train"), str(root / "eval")


def test_event_files_read_back(data, tmp_path, cli):
    from tensorboard.plugins.hparams import metadata as hp_metadata

    from panns_keras.train.trainer import train

    wd = tmp_path / "run"
    cfg = tiny_config(*data, num_steps=3, image_every=2, profile_steps="2,3")
    cfg.eval.every = 2  # evaluations at steps 2 and 3 (the last)
    result = train(cfg, wd)
    runs = read_events(wd)
    assert {".", "train", "eval"} <= set(runs), sorted(runs)
    train_tags, eval_tags = runs["train"], runs["eval"]

    # hparams: a session in the workdir itself, its metrics in train/ and eval/.
    info = hp_metadata.parse_session_start_info_plugin_data(runs["."][HPARAMS_TAG]["content"])
    hp = info.hparams
    assert hp["model"].string_value == "cnn6" and hp["mode"].string_value == "scratch"
    assert hp["fold"].string_value == "none" and hp["train.precision"].string_value == "float32"
    assert hp["train.batch_size"].number_value == 4 and hp["seed"].number_value == 0
    assert hp["train.learning_rate"].number_value == pytest.approx(1e-3)
    assert hp["model.overrides.mel_bins"].number_value == 32

    # Train and eval loss under one tag; the eval loss is the evaluation's.
    assert train_tags["loss"]["plugin"] == eval_tags["loss"]["plugin"] == "scalars"
    assert sorted(train_tags["loss"]["steps"]) == [1, 2, 3]
    assert sorted(eval_tags["loss"]["steps"]) == [2, 3]
    assert float(train_tags["loss"]["steps"][3]) == pytest.approx(result["loss"], rel=1e-6)
    assert float(eval_tags["loss"]["steps"][3]) == pytest.approx(result["eval"]["loss"], rel=1e-6)
    assert 0.05 < result["eval"]["loss"] < 5.0
    assert float(eval_tags["mAP"]["steps"][3]) == pytest.approx(result["eval"]["mAP"], rel=1e-6)
    for tag in ("learning_rate", "clips_per_second", "config", "train_audio", "train_logmel"):
        assert tag in train_tags, (tag, sorted(train_tags))
    assert float(train_tags["clips_per_second"]["steps"][3]) > 0
    for tag in ("mean_AUC", "d_prime", "accuracy", "classes_by_AP"):
        assert tag in eval_tags, (tag, sorted(eval_tags))

    # A PR curve per class (3 classes <= 10): TP + FN = 4 positives, FP + TN = 8 negatives.
    for c in range(3):
        curve = eval_tags[f"pr_curve_tone_{c}"]
        assert curve["plugin"] == "pr_curves"
        pr = curve["steps"][3]
        assert pr.shape == (6, 201)
        np.testing.assert_array_equal(pr[0] + pr[3], 4.0)
        np.testing.assert_array_equal(pr[1] + pr[2], 8.0)
        assert pr[0, 0] == 4.0 and pr[1, 0] == 8.0  # threshold 0: everything is positive
        assert np.all(np.diff(pr[0]) <= 0) and np.all(np.diff(pr[5]) <= 0)

    # The per-class AP chart: a PNG image with its width and height.
    img = eval_tags["per_class_AP"]
    assert img["plugin"] == "images"
    width, height, png = img["steps"][3]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int(width) > 300 and int(height) > 200

    # No "/" inside a tag name, beyond the hparams plugin's own tags.
    for run, tags in runs.items():
        bad = [t for t in tags if "/" in t and not t.startswith("_hparams_/")]
        assert not bad, (run, bad)

    # The profiler window: one trace of steps 2..3 under train/plugins/profile.
    traces = glob.glob(str(wd / "train" / "plugins" / "profile" / "*" / "*.xplane.pb"))
    assert len(traces) == 1 and os.path.getsize(traces[0]) > 1000, traces

    # panns-keras evaluate writes the same eval summaries under --out/eval, at step 3.
    out = tmp_path / "report"
    p = cli(
        "evaluate", f"--model={wd}", f"--data={data[1]}/*.tfrecord", f"--out={out}", cwd=tmp_path
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert f"TensorBoard events in {out / 'eval'}" in p.stdout
    got = read_events(out)
    assert set(got) == {"eval"}, sorted(got)
    ev = got["eval"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert float(ev["mAP"]["steps"][3]) == pytest.approx(metrics["mAP"], rel=1e-6)
    assert float(ev["loss"]["steps"][3]) == pytest.approx(metrics["loss"], rel=1e-6)
    assert metrics["loss"] > 0
    assert ev["per_class_AP"]["plugin"] == "images"
    assert {f"pr_curve_tone_{c}" for c in range(3)} <= set(ev)


def _session_groups(logdir) -> list:
    """What TensorBoard's hparams dashboard lists for ``logdir`` (its plugin's own handler)."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer as pem
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups

    mux = pem.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(logdir))
    tb = base_plugin.TBContext(logdir=str(logdir), multiplexer=mux, data_provider=provider)
    request = api_pb2.ListSessionGroupsRequest(
        start_index=0,
        slice_size=100,
        allowed_statuses=[api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS],
        col_params=[api_pb2.ColParams(hparam="fold")],
    )
    handler = list_session_groups.Handler(
        context.RequestContext(), backend_context.Context(tb), "", request
    )
    return list(handler.run().session_groups)


def test_hparams_dashboard_compares_splits(tmp_path):
    """Finetune runs each split as a trainer run in its own workdir (mode and held-out fold in
    its config): TensorBoard's hparams plugin lists one session per split, with the mode, the
    fold and the train and eval scalars as metrics."""
    from panns_keras.train.config import base_config
    from panns_keras.train.summaries import Summaries
    from panns_keras.train.summary_data import flat_hparams

    for fold, m in (("1", 0.5), ("2", 0.75)):
        cfg = base_config()
        cfg.model.init, cfg.model.mode, cfg.data.eval_folds = "/models/cnn6", "freeze_l1", fold
        s = Summaries(tmp_path / f"split_fold_{fold}", backend="tensorboard")
        s.hparams(cfg, model_name="cnn6")
        s.train_step(2, 0.25, 1e-3, 10.0)
        res = {**_result(), "mAP": m}
        s.evaluation(2, res, ["a", "b", "c"])
        s.close()
    hp = flat_hparams(cfg, model_name="cnn6")
    want = ("cnn6", "freeze_l1", "2", "/models/cnn6")
    assert (hp["model"], hp["mode"], hp["fold"], hp["model.init"]) == want
    assert all("/" not in k and isinstance(v, (bool, int, float, str)) for k, v in hp.items())

    groups = _session_groups(tmp_path)
    assert len(groups) == 2
    seen = {}
    for g in groups:
        metrics = {(v.name.group, v.name.tag): v.value for v in g.metric_values}
        seen[g.hparams["fold"].string_value] = metrics[("eval", "mAP")]
        assert g.hparams["mode"].string_value == "freeze_l1"
        assert metrics[("train", "loss")] == 0.25
        assert metrics[("eval", "loss")] == pytest.approx(_result()["loss"])
    assert seen == {"1": 0.5, "2": 0.75}


def _result():
    from panns_keras.metrics import evaluate_scores
    from panns_keras.train.evaluation import clip_loss

    target = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0]], np.float32)
    scores = np.array(
        [[0.9, 0.2, 0.1], [0.3, 0.6, 0.2], [0.2, 0.7, 0.4], [0.4, 0.1, 0.3], [0.1, 0.8, 0.0]]
    )
    res = evaluate_scores(target, scores)
    res["accuracy"], res["num_clips"] = 0.8, 5
    res["loss"] = clip_loss(target, scores)
    res["predictions"] = {"scores": scores, "target": target}
    return res


def test_clip_loss_is_the_training_bce():
    """Mean over clips x classes of torch's BCE (log terms clamped at -100)."""
    from panns_keras.train.evaluation import clip_loss

    target = np.array([[1.0, 0.0], [0.0, 1.0]])
    scores = np.array([[0.8, 0.0], [0.25, 0.0]])  # 0.0 for a positive: log clamped at -100
    want = -(np.log(0.8) + np.log(1.0) + np.log(0.75) - 100.0) / 4
    assert clip_loss(target, scores) == pytest.approx(want, rel=1e-6)


def test_jsonl_log(tmp_path):
    from panns_keras.train.config import base_config
    from panns_keras.train.summaries import JSONL_NAME, Summaries

    s = Summaries(tmp_path, backend="jsonl")
    s.hparams(base_config(), model_name="cnn14")
    s.config_text("{}")
    s.train_step(5, 0.25, 1e-3, 12.5)
    res = _result()
    s.evaluation(5, res, ["a", "b", "c"])
    s.train_media(5, np.zeros((2, 100), np.float32), 8000)  # skipped: media
    s.close()
    Summaries(tmp_path, enabled=False, backend="jsonl").train_step(6, 1.0, 1.0, 1.0)
    lines = [json.loads(x) for x in (tmp_path / JSONL_NAME).read_text().splitlines()]
    got = {(r["run"], r["kind"], r["tag"]): r for r in lines}
    assert len(got) == len(lines) == 12, sorted(got)
    assert got[("", "hparams", "hparams")]["value"]["model"] == "cnn14"
    assert got[("train", "text", "config")]["value"] == "```\n{}\n```"
    train_loss, eval_loss = got[("train", "scalar", "loss")], got[("eval", "scalar", "loss")]
    assert (train_loss["step"], train_loss["value"]) == (5, 0.25)
    assert eval_loss["value"] == pytest.approx(res["loss"]) and eval_loss["step"] == 5
    assert got[("train", "scalar", "clips_per_second")]["value"] == 12.5
    assert got[("eval", "scalar", "mAP")]["value"] == pytest.approx(res["mAP"])
    assert got[("eval", "scalar", "accuracy")]["value"] == 0.8
    assert "| 1 | a |" in got[("eval", "text", "classes_by_AP")]["value"]
    ap = got[("eval", "per_class_ap", "per_class_AP")]["value"]
    assert ap["names"] == ["a", "b", "c"] and ap["ap"] == pytest.approx(list(res["ap"]))
    assert not [r for r in lines if "/" in r["tag"]]


_NO_TF = """
import json, sys
sys.modules["tensorflow"] = None  # as if not installed
from panns_keras.train.summaries import Summaries
from panns_keras.train.config import base_config
s = Summaries({out!r})
s.hparams(base_config())
s.train_step(1, 0.5, 0.001, 3.0)
s.close()
print(json.dumps({{"backend": s.backend, "keras": __import__("keras").backend.backend()}}))
"""


def test_without_tensorflow_writes_json_lines(tmp_path):
    p = run_py(_NO_TF.format(out=str(tmp_path)), env={"KERAS_BACKEND": "jax"})
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout.splitlines()[-1]) == {"backend": "jsonl", "keras": "jax"}
    lines = [json.loads(x) for x in (tmp_path / "summaries.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["tag"]) for r in lines] == [
        ("hparams", "hparams"),
        ("scalar", "loss"),
        ("scalar", "learning_rate"),
        ("scalar", "clips_per_second"),
    ]
    assert lines[0]["value"]["backend"] == "jax"


def test_pr_curve_data_matches_tensorboard():
    import tensorflow as tf
    from tensorboard.plugins.pr_curve import summary as pr_summary

    from panns_keras.train.summary_data import pr_curve_classes, pr_curve_data

    rng = np.random.default_rng(0)
    labels = rng.random(300) < 0.3
    scores = np.clip(rng.random(300) * 0.6 + 0.4 * labels, 0, 1).astype(np.float32)
    ref = pr_summary.pb("x", labels, scores, num_thresholds=201)
    want = tf.make_ndarray(ref.value[0].tensor)
    np.testing.assert_allclose(pr_curve_data(labels, scores), want, rtol=1e-6)
    res = {"num_positives": np.array([5, 0, 9, 2, 9]), "excluded_classes": [1, 3]}
    assert pr_curve_classes(res, 2) == [2, 4] and pr_curve_classes(res, 10) == [0, 2, 4]


_JAX_PROFILE = """
import glob, sys
import jax, jax.numpy as jnp
from panns_keras.train.profiler import Profiler

f = jax.jit(lambda a: (a @ a).sum())
for first_step in (1, 3):  # a fresh run; a run resumed inside the window (steps 3..4)
    p = Profiler(sys.argv[1] + f"/from_{first_step}", "2,3")
    active = []
    for n in range(first_step, 5):
        with p.step(n):
            f(jnp.ones((32, 32))).block_until_ready()
        active.append(p.active)
    print(p.backend, active, len(glob.glob(p.logdir.as_posix() + "/plugins/profile/*/*.xplane.pb")))
"""


def test_profiler_window_on_jax(tmp_path):
    code = _JAX_PROFILE.replace("sys.argv[1]", repr(str(tmp_path)))
    p = run_py(code, env={"KERAS_BACKEND": "jax"})
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split("\n")[:2] == [
        "jax [False, True, False, False] 1",
        "jax [False, False] 1",
    ], p.stdout


def test_profile_steps_parsing():
    from panns_keras.errors import UserError
    from panns_keras.train.profiler import parse_profile_steps

    assert parse_profile_steps("") is None and parse_profile_steps(None) is None
    assert parse_profile_steps("5,8") == (5, 8) and parse_profile_steps(" 7 ") == (7, 7)
    assert parse_profile_steps([2, 3]) == (2, 3)
    for bad in ("0,3", "4,2", "a,b", "1,2,3"):
        with pytest.raises(UserError, match=r"^config\.train\.profile_steps: "):
            parse_profile_steps(bad)
