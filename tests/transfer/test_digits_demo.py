"""The documented transfer run (``make transfer-demo``) end to end on a tiny slice."""

import json

import pytest

from examples import transfer_demo as digits_demo
from panns_keras.errors import UserError


def test_digits_demo_tiny_slice(tmp_path):
    out = tmp_path / "out"
    settings = digits_demo.Settings(steps=2, pretrain_steps=2, batch_size=4, takes=2,
                                    speakers=("george", "lucas"), hidden=16)  # fmt: skip
    lines = []
    summary = digits_demo.run(out, settings, say=lines.append)
    saved = json.loads((out / "results.json").read_text())
    md = (out / "results.md").read_text()
    assert saved["rows"] == summary["rows"]
    assert [r["row"] for r in saved["rows"]] == [r[0] for r in digits_demo.ROWS]
    assert {r["mode"] for r in saved["rows"]} == {"scratch", "finetune", "freeze_l1",
                                                 "freeze_l3", "probe"}  # fmt: skip
    assert saved["target_clips"] == 5 * 2 * 2
    for r in saved["rows"]:
        assert r["metric"] == "accuracy" and 0.0 <= r["mean"] <= 1.0
        assert r["wall_s"] > 0 and r["cpu_s"] > 0
        assert sorted(r["folds"]) == ["george", "lucas"]
        for speaker, f in r["folds"].items():
            assert 0.0 <= f["accuracy"] <= 1.0
            assert f["test_speakers"] == [speaker]  # the test fold is exactly one speaker
            assert speaker not in f["train_speakers"] and f["train_speakers"]
            assert f["test_clips"] == 10 and f["train_clips"] == 10
        assert f"| {r['row']} | {r['mean']:.3f} |" in md
        assert "--folds=all" in r["command"] and f"--mode={r['mode']}" in r["command"]
    # no leakage: pretraining saw digits 0-4 only, the target is digits 5-9
    src = (out / "data" / "source" / "clips.csv").read_text().splitlines()[1:]
    tgt = (out / "data" / "target" / "clips.csv").read_text().splitlines()[1:]
    assert {r.split(",")[1] for r in src} == {"zero", "one", "two", "three", "four"}
    assert {r.split(",")[1] for r in tgt} == {"five", "six", "seven", "eight", "nine"}
    assert not set(src) & set(tgt)
    split = json.loads((out / "runs" / "finetune" / "fold_lucas" / "split.json").read_text())
    assert all("_lucas_" in c for c in split["test"])
    assert not any("_lucas_" in c for c in split["train"])

    # a second run with the same settings reuses every finished step
    again = digits_demo.run(out, settings, say=lines.append)
    assert again["rows"] == summary["rows"]
    assert any(line.startswith("  reusing") for line in lines)


def test_digits_demo_rejects_unknown_speaker(tmp_path):
    with pytest.raises(UserError, match="speakers"):
        digits_demo.run(tmp_path, digits_demo.Settings(speakers=("alice",)))
