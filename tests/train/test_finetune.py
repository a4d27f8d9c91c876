"""k-fold transfer learning over TFRecords with the one trainer (train/finetune.py)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import panns_keras
from panns_keras.data import formats, schema
from panns_keras.models.saving import save_model_dir
from panns_keras.train.finetune import finetune
from tests.helpers.train_data import read_events, read_hparams, tiny_config

SR, CLIP, K = 8000, 4000, 3


@pytest.fixture(scope="module")
def folded(tmp_path_factory):
    """Three folds of class-dependent tones, one shard per (class, fold), manifest v2."""
    d = tmp_path_factory.mktemp("folded")
    rng = np.random.default_rng(0)
    t = np.arange(CLIP) / SR
    shards, k = [], 0
    for fold in ("1", "2", "3"):
        for c in range(K):
            fn = formats.shard_filename("train", k, 3 * K)
            with tf.io.TFRecordWriter(str(d / fn)) as w:
                for j in range(4):
                    f0 = 300.0 * (c + 1) * (1 + 0.03 * rng.standard_normal())
                    wav = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.05 * rng.standard_normal(CLIP)
                    w.write(
                        schema.serialize_example(
                            wav.astype(np.float32),
                            [c],
                            f"f{fold}_c{c}_{j}",
                            "",
                            SR,
                            CLIP,
                            fold=fold,
                        )
                    )
            shards.append({"file": fn, "group": c, "num_clips": 4, "fold": fold})
            k += 1
    manifest = {
        "version": 2,
        "sample_rate": SR,
        "clip_samples": CLIP,
        "num_classes": K,
        "shards": shards,
    }
    (d / formats.MANIFEST_NAME).write_text(json.dumps(manifest))
    formats.write_labels_csv(
        d / formats.LABELS_NAME, [formats.Label(i, f"/m/t{i}", f"tone {i}") for i in range(K)]
    )
    return d


@pytest.fixture(scope="module")
def init_dir(tmp_path_factory):
    cfg = tiny_config("unused")
    o = {k: v for k, v in cfg.model.overrides.items() if v is not None}
    model = panns_keras.build_model("cnn6", num_classes=5, seed=3, **o)
    out = tmp_path_factory.mktemp("ft_init") / "init"
    save_model_dir(model, out, [(f"/m/{i}", f"old {i}") for i in range(5)])
    return str(out)


def _config(init, mode):
    cfg = tiny_config("unused", num_steps=2)
    cfg.model.init, cfg.model.mode = init, mode
    o = cfg.model.overrides
    o.sample_rate = o.window_size = o.hop_size = o.fmax = o.mel_bins = o.embedding_size = None
    cfg.data.mixup = "none"
    return cfg


def test_kfold_freeze_l1_writes_results_and_resumes(folded, init_dir, tmp_path):
    res = finetune(str(folded), tmp_path, _config(init_dir, "freeze_l1"), folds="all")
    assert [s["held_out_fold"] for s in res["splits"]] == ["1", "2", "3"]
    for s in res["splits"]:
        assert 0.0 <= s["accuracy"] <= 1.0 and s["steps"] == 2
        model = panns_keras.load_model(s["model_dir"])
        assert model.labels == ("tone 0", "tone 1", "tone 2")
    for fold in ("1", "2", "3"):  # TensorBoard: one hparams session per split
        hp = read_hparams(tmp_path / f"split_fold_{fold}")
        assert (hp["mode"], hp["fold"], hp["model"]) == ("freeze_l1", fold, "cnn6"), hp
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["mean"]["accuracy"] == pytest.approx(
        np.mean([s["accuracy"] for s in res["splits"]])
    )
    # Interrupted after a split's last checkpoint but before its split.json: the re-run
    # trains nothing more and still evaluates the held-out fold.
    (tmp_path / "split_fold_2" / "split.json").unlink()
    resumed = finetune(str(folded), tmp_path, _config(init_dir, "freeze_l1"), folds="all")
    assert resumed["splits"][1] == res["splits"][1]
    # A re-run finds every split done and trains nothing.
    stamp = os.path.getmtime(tmp_path / "split_fold_1" / "split.json")
    again = finetune(str(folded), tmp_path, _config(init_dir, "freeze_l1"), folds="all")
    assert again["splits"] == res["splits"]
    assert os.path.getmtime(tmp_path / "split_fold_1" / "split.json") == stamp


def test_probe_on_streamed_embeddings(folded, init_dir, tmp_path):
    res = finetune(str(folded), tmp_path, _config(init_dir, "probe"), folds="1,3")
    assert [s["held_out_fold"] for s in res["splits"]] == ["1", "3"]
    for s in res["splits"]:
        assert s["train_clips"] == 24 and s["test_clips"] == 12
        # Three well-separated tones: a converged linear probe on any non-degenerate
        # embedding separates them.
        assert s["accuracy"] >= 0.9, s
        wd = tmp_path / f"split_fold_{s['held_out_fold']}"
        hp = read_hparams(wd)
        assert (hp["mode"], hp["fold"], hp["probe.C"]) == ("probe", s["held_out_fold"], s["C"])
        ev = read_events(wd)["eval"]
        assert float(ev["accuracy"]["steps"][0]) == pytest.approx(s["accuracy"])
        assert ev["pr_curve_tone_2"]["steps"][0][0, 0] == 4.0  # 4 held-out clips per class


def test_fold_errors_are_one_line(folded, init_dir, tmp_path):
    from panns_keras.errors import UserError

    with pytest.raises(UserError, match=r"no clips in fold\(s\) \['9'\]"):
        finetune(str(folded), tmp_path, _config(init_dir, "finetune"), folds="9")


def test_a_split_stopped_by_a_signal_is_not_marked_done(folded, init_dir, tmp_path, monkeypatch):
    from panns_keras.errors import UserError
    from panns_keras.train import trainer

    def stopped(cfg, workdir, progress=None):  # train() after SIGTERM (checkpointed)
        return {"step": 3, "loss": 0.5, "eval": None, "stopped_early": True, "model": None}

    monkeypatch.setattr(trainer, "train", stopped)
    with pytest.raises(UserError, match="stopped at step 3 by a signal"):
        finetune(str(folded), tmp_path, _config(init_dir, "finetune"), folds="all")
    assert not (tmp_path / "split_fold_1" / "split.json").exists()
    assert not (tmp_path / "results.json").exists()
