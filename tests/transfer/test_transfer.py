import itertools
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import panns_keras
from panns_keras.transfer import (
    TrainOptions,
    build_transfer_model,
    embeddings,
    finetune,
    make_splits,
)
from panns_keras.transfer.train import train_transfer


def _base_weights(tm):
    """Every base weight (trainable and BN moving statistics) by layer path."""
    model = getattr(tm.model, "base", tm.model)
    return {p: [w.copy() for w in layer.get_weights()] for p, layer in model.weight_layers().items()
            if p != "fc_audioset"}  # fmt: skip


def _head_weights(tm):
    return [v.numpy().copy() for v in tm.head_vars]


def _changed(a, b):
    return any(not np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("mode", ["freeze_l1", "freeze_l3", "finetune", "scratch"])
def test_modes_update_the_right_weights(base, clips, mode):
    tm = build_transfer_model(base, clips.num_classes, mode, hidden=16, seed=0)
    if mode != "scratch":  # pretrained weights copied (all but the classifier)
        src = {p: x.get_weights() for p, x in base.weight_layers().items() if p != "fc_audioset"}
        assert all(not _changed(src[p], w) for p, w in _base_weights(tm).items())
    before_base, before_head = _base_weights(tm), _head_weights(tm)
    opts = TrainOptions(steps=3, batch_size=4, lr=1e-2, base_lr_scale=1.0, gain_db=3,
                        time_shift=0.1, mixup_alpha=0.4)  # fmt: skip
    stats = train_transfer(tm, clips, opts, multi_label=False)
    assert np.isfinite(stats["loss"])
    after_base = _base_weights(tm)
    assert _changed(before_head, _head_weights(tm))
    moved = [p for p in before_base if _changed(before_base[p], after_base[p])]
    if mode.startswith("freeze"):
        assert moved == []  # bit-identical, BN statistics included
    else:
        assert "conv_block1_conv1" in moved and "bn0" in moved  # weights and BN stats


def test_unfreeze_after_and_base_lr_scale(base, clips):
    tm = build_transfer_model(base, clips.num_classes, "freeze_l1", seed=0)
    before = _base_weights(tm)
    train_transfer(tm, clips, TrainOptions(steps=3, batch_size=4, unfreeze_after=2,
                                           base_lr_scale=1.0), False)  # fmt: skip
    assert _changed(before["conv_block1_conv1"], _base_weights(tm)["conv_block1_conv1"])
    tm = build_transfer_model(base, clips.num_classes, "finetune", seed=0)
    before = _base_weights(tm)
    train_transfer(tm, clips, TrainOptions(steps=2, batch_size=4, base_lr_scale=0.0), False)
    after = _base_weights(tm)
    assert not _changed(before["conv_block1_conv1"], after["conv_block1_conv1"])  # lr 0
    assert _changed(before["bn0"], after["bn0"])  # BN statistics still follow the data


def test_freeze_l1_learns(base, clips):
    tm = build_transfer_model(base, clips.num_classes, "freeze_l1", seed=0)
    logits = lambda: tm.logits(clips.waveforms, train_base=False).numpy()  # noqa: E731
    loss0 = float(tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(clips.targets, logits())))
    train_transfer(tm, clips, TrainOptions(steps=40, batch_size=12, lr=3e-3), False)
    loss1 = float(tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(clips.targets, logits())))
    assert loss1 < 0.7 * loss0


def test_folds_never_leak(clips):
    splits = make_splits(clips, "all")
    assert [s[0] for s in splits] == [f"fold_{f}" for f in sorted(set(clips.folds))]
    ids, folds = np.asarray(clips.clip_ids), np.asarray(clips.folds)
    for name, tr, te in splits:
        fold = name[len("fold_") :]
        assert set(ids[te]) == set(ids[folds == fold])
        assert not set(ids[tr]) & set(ids[te])
        assert set(ids[tr]) | set(ids[te]) == set(ids)
    ((_, tr, te),) = make_splits(clips, "george,lucas")[1:]
    assert "7_lucas_0" in ids[te] and "7_lucas_0" not in ids[tr]
    holdout = make_splits(clips.subset(range(len(clips))), "")  # fold 'test' absent -> hash
    assert holdout[0][0] == "holdout"


def test_probe_equals_frozen_end_to_end_and_cv(base, clips, tmp_path):
    res = finetune(clips, str(tmp_path), init=base, mode="probe", folds="all",
                   steps=30, batch_size=8, lr=1e-2)  # fmt: skip
    assert res["metric"] == "accuracy" and len(res["splits"]) == 4
    cached = os.listdir(tmp_path / "embeddings")
    assert len(cached) == 1  # one embedding file for all folds
    for s in res["splits"]:
        split = json.loads((tmp_path / s["split"] / "split.json").read_text())
        assert not set(split["train"]) & set(split["test"])
        assert all(t.split("_")[1] == s["split"][5:] for t in split["test"])
        assert any(f.startswith("events") for f in os.listdir(tmp_path / s["split"]))
    # the saved probe is an AudioTagger; its end-to-end logits equal the cached-embedding ones
    model = panns_keras.load_model(res["splits"][0]["model_dir"])
    assert model.labels == ("one", "seven", "zero")
    w, b = model.weight_layers()["fc_audioset"].get_weights()
    emb = embeddings(base, clips)  # no cache
    end_to_end = model(clips.waveforms, training=False, return_intermediates=True)["logits"]
    # float32 rounding scales with |emb| |w| (the converged probe's weights reach ~10)
    scale = float(np.max(np.abs(emb) @ np.abs(w)))
    np.testing.assert_allclose(emb @ w + b, np.asarray(end_to_end), atol=1e-6 * scale + 1e-5)
    # a second run reuses the cache (no new files) and gives the same result
    res2 = finetune(clips, str(tmp_path), init=base, mode="probe", folds="all",
                    steps=30, batch_size=8, lr=1e-2)  # fmt: skip
    assert sorted(os.listdir(tmp_path / "embeddings")) == sorted(cached)
    assert res2["mean"] == res["mean"]


def test_multi_label_is_detected(clips):
    multi = clips.subset(range(len(clips)))
    assert not multi.multi_label
    multi.targets[0, :] = 1
    assert multi.multi_label


def test_cli_on_csv_with_folds(base, fsdd_rows, tmp_path):
    """CSV -> data_prep -> folds from the CSV -> freeze_l1 per fold -> loadable models."""
    from panns_keras.cli import main
    from panns_keras.convert.model_dir import save_model_dir
    from panns_keras.labels import audioset_labels

    init = save_model_dir(base, tmp_path / "base", audioset_labels())
    csv = tmp_path / "clips.csv"
    rows = [f"{p},{label},{spk}" for p, label, spk in fsdd_rows if spk in ("george", "lucas")]
    csv.write_text("path,labels,fold\n" + "\n".join(rows) + "\n")
    work = tmp_path / "work"
    rc = main(["panns-keras", "finetune", f"--data={csv}", f"--model={init}", f"--out={work}",
               "--mode=freeze_l1", "--folds=all", "--steps=2", "--batch_size=4",
               "--clip_seconds=1"])  # fmt: skip
    assert rc == 0
    res = json.loads((work / "results.json").read_text())
    assert [s["split"] for s in res["splits"]] == ["fold_george", "fold_lucas"]
    assert all(s["train_clips"] == 3 and s["test_clips"] == 3 for s in res["splits"])
    split = json.loads((work / "fold_lucas" / "split.json").read_text())
    assert all("lucas" in c for c in split["test"])
    assert not any("lucas" in c for c in split["train"])
    model = panns_keras.load_model(res["splits"][0]["model_dir"])
    assert model.spec.num_classes == 3 and set(model.labels) == {"zero", "one", "seven"}


def test_scratch_ignores_base_lr_scale(base, clips):
    """base_lr_scale protects pretrained weights; a scratch base trains at the full lr."""
    tm = build_transfer_model(base, clips.num_classes, "scratch", seed=0)
    before = _base_weights(tm)
    train_transfer(tm, clips, TrainOptions(steps=2, batch_size=4, base_lr_scale=0.0), False)
    assert _changed(before["conv_block1_conv1"], _base_weights(tm)["conv_block1_conv1"])


def test_cosine_schedule_and_unknown_schedule():
    from panns_keras.errors import UserError
    from panns_keras.transfer.train import _optimizer

    v = tf.Variable(tf.zeros(3))
    opt = _optimizer(1.0, [v], TrainOptions(steps=10, schedule="cosine", min_lr_ratio=0.05))
    lrs = []
    for _ in range(10):
        lrs.append(float(opt.learning_rate))
        opt.apply_gradients([(tf.ones(3), v)])
    assert lrs[0] == pytest.approx(1.0) and all(a > b for a, b in itertools.pairwise(lrs))
    assert float(opt.learning_rate) == pytest.approx(0.05)
    with pytest.raises(UserError, match="schedule"):
        _optimizer(1.0, [v], TrainOptions(schedule="step"))


@pytest.mark.parametrize("mode", ["scratch", "freeze_l1", "freeze_l3"])
def test_seed_fixes_new_weights_whatever_was_built_before(base, clips, mode):
    """--seed reproduces the new head (and a scratch base) in a fresh process or after
    other modes: weight initialisers otherwise follow Keras' global generator."""

    def weights():
        tm = build_transfer_model(base, clips.num_classes, mode, hidden=8, seed=5)
        return [v.numpy() for v in tm.head_vars + tm.base_vars]

    first = weights()
    panns_keras.build_model("cnn6", num_classes=3, sample_rate=8000, window_size=256,
                            hop_size=80, fmax=4000, mel_bins=32)  # fmt: skip
    assert not _changed(first, weights())
