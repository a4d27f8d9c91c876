"""The documented transfer run (``make transfer-demo``) end to end on a tiny slice."""

import json

import pytest

from examples import transfer_demo
from panns_keras.errors import UserError


@pytest.mark.slow  # every transfer mode, twice (the rerun reuses the first)
def test_transfer_demo_tiny_slice(tmp_path):
    out = tmp_path / "out"
    settings = transfer_demo.Settings(
        steps=2, pretrain_steps=2, batch_size=4, takes=2, speakers=("george", "lucas"), hidden=16
    )
    lines = []
    summary = transfer_demo.run(out, settings, say=lines.append)
    saved = json.loads((out / "results.json").read_text())
    md = (out / "results.md").read_text()
    assert saved["rows"] == summary["rows"]
    assert [r["row"] for r in saved["rows"]] == [r[0] for r in transfer_demo.ROWS]
    assert {r["mode"] for r in saved["rows"]} == {
        "scratch",
        "finetune",
        "freeze_l1",
        "freeze_l3",
        "probe",
    }
    assert saved["target_clips"] == 5 * 2 * 2
    for r in saved["rows"]:
        assert r["metric"] == "accuracy" and 0.0 <= r["mean"] <= 1.0
        assert r["wall_s"] > 0 and r["cpu_s"] > 0
        assert sorted(r["folds"]) == ["george", "lucas"]
        assert all(0.0 <= f["accuracy"] <= 1.0 for f in r["folds"].values())
        assert f"| {r['row']} | {r['mean']:.3f} |" in md
        assert "--folds=all" in r["command"] and f"--mode={r['mode']}" in r["command"]
    # no leakage: pretraining saw digits 0-4 only, the target is digits 5-9
    src = (out / "data" / "source" / "clips.csv").read_text().splitlines()[1:]
    tgt = (out / "data" / "target" / "clips.csv").read_text().splitlines()[1:]
    assert {r.split(",")[1] for r in src} == {"zero", "one", "two", "three", "four"}
    assert {r.split(",")[1] for r in tgt} == {"five", "six", "seven", "eight", "nine"}
    assert not set(src) & set(tgt)
    # every split of every trained row held out exactly one speaker's clips
    split = json.loads((out / "runs" / "finetune" / "split_fold_lucas" / "split.json").read_text())
    assert split["held_out_fold"] == "lucas" and split["steps"] == 2

    # a second run with the same settings reuses every finished step
    again = transfer_demo.run(out, settings, say=lines.append)
    assert again["rows"] == summary["rows"]
    assert any(line.startswith("  reusing") for line in lines)


def test_transfer_demo_rejects_unknown_speaker(tmp_path):
    with pytest.raises(UserError, match="speakers"):
        transfer_demo.run(tmp_path, transfer_demo.Settings(speakers=("alice",)))
