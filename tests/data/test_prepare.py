import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import soxr
import tensorflow as tf

from panns_keras.audio import fit_length
from panns_keras.data import schema
from panns_keras.data.prepare import run
from panns_keras.data.prepare import writer as prep

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANIMALS = ["ovos_sheep.wav", "ovos_rooster_44k_stereo.flac", "librosa_robin_48k.ogg"]
SPEECH = ["fsdd_0_george_0.wav", "fsdd_1_jackson_0.wav", "asterisk_call-forwarding.wav"]
OTHER = ["freedesktop_camera-shutter_22k.mp3", "ovos_sheep_24bit.wav"]


def _make_broken(folder):
    open(os.path.join(folder, "empty.wav"), "wb").close()
    with open(os.path.join(folder, "random.wav"), "wb") as f:
        f.write(np.random.default_rng(1).bytes(3000))
    x = np.zeros(800, np.float32)
    x[5] = np.inf
    sf.write(os.path.join(folder, "nan.wav"), x, 8000, subtype="FLOAT")


@pytest.fixture
def class_dir(tmp_path, assets_dir):
    root = tmp_path / "classes"
    for cls, names in (("animal", ANIMALS), ("speech", SPEECH), ("zz_other", OTHER)):
        (root / cls).mkdir(parents=True)
        for n in names:
            shutil.copy(os.path.join(assets_dir, n), root / cls / n)
    _make_broken(str(root / "speech"))
    (root / "speech" / "notes.txt").write_text("not audio, ignored")
    return str(root)


def _records(out_dir, manifest):
    recs = {}
    for s in manifest["shards"]:
        for r in tf.data.TFRecordDataset(os.path.join(out_dir, s["file"])):
            d = schema.example_to_numpy(r.numpy())
            recs[d["clip_id"]] = (d, s)
    return recs


def test_class_dir_prepare_manifest_and_audio(class_dir, tmp_path):
    out = str(tmp_path / "out")
    m = prep.prepare(out, class_dir=class_dir, clip_seconds=2.0, clips_per_shard=2, num_workers=2)
    assert m["num_inputs"] == 11 and m["num_clips"] == 8 and m["num_skipped"] == 3
    reasons = {os.path.basename(s["source"]): s["reason"] for s in m["skipped"]}
    assert reasons == {
        "empty.wav": "zero-length",
        "random.wav": "unreadable",
        "nan.wav": "not finite",
    }
    assert m["class_counts"] == {"0": 3, "1": 3, "2": 2}
    assert [lab["display_name"] for lab in m["labels"]] == [
        "animal",
        "speech",
        "zz_other",
    ]
    with open(os.path.join(out, "labels.csv")) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["index", "mid", "display_name"] and rows[3] == [
        "2",
        "zz_other",
        "zz_other",
    ]
    n = len(m["shards"])
    assert [s["file"] for s in m["shards"]] == [
        f"train-{i:05d}-of-{n:05d}.tfrecord" for i in range(n)
    ]
    assert sum(s["num_clips"] for s in m["shards"]) == 8
    for s in m["shards"]:
        path = os.path.join(out, s["file"])
        assert prep.file_sha256(path) == s["sha256"]
        assert set(s["class_counts"]) <= {str(s["group"])}  # one class group per shard
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
    with open(os.path.join(out, "manifest.json")) as f:
        assert json.load(f) == m
    # decoded audio == soundfile + mean downmix + soxr VHQ + int16 rounding, padded/trimmed
    recs = _records(out, m)
    for d, _ in recs.values():
        x, sr = sf.read(d["source"], dtype="float32", always_2d=True)
        x = x.mean(axis=1)
        if sr != 32000:
            x = soxr.resample(x, sr, 32000, quality="VHQ")
        ref, n_true = fit_length(x, 64000), min(len(x), 64000)
        assert d["num_samples"] == n_true and d["sample_rate"] == 32000
        assert d["audio"].shape == (64000,)
        np.testing.assert_allclose(
            schema.int16_to_float(d["audio"]), np.clip(ref, -1, 1), atol=2e-5
        )
    assert run.exit_code(m, 0.5) == 0 and run.exit_code(m, 0.1) == 1


def test_generic_csv_labels_and_skips(tmp_path, assets_dir):
    (tmp_path / "wavs").mkdir()
    for n in ANIMALS + SPEECH:
        shutil.copy(os.path.join(assets_dir, n), tmp_path / "wavs" / n)
    labels = tmp_path / "labels.csv"
    labels.write_text(
        'index,mid,display_name\n0,/m/09x0r,Speech\n1,/m/0jbk,Animal\n2,/m/07qrkrw,"Bird"\n'
    )
    rows = [
        ("wavs/ovos_sheep.wav", "Animal", "1"),
        ("wavs/ovos_rooster_44k_stereo.flac", "/m/0jbk", "1"),
        ("wavs/librosa_robin_48k.ogg", "Animal|2", "2"),
        ("wavs/fsdd_0_george_0.wav", "0", "2"),
        ("wavs/fsdd_1_jackson_0.wav", "Speech;unknown-thing", "1"),
        (str(tmp_path / "wavs" / "asterisk_call-forwarding.wav"), "speech", "1"),
        ("wavs/does_not_exist.wav", "Speech", "1"),
    ]
    with open(tmp_path / "list.csv", "w", newline="") as f:
        csv.writer(f).writerows([("path", "labels", "fold"), *rows])
    m = prep.prepare(
        str(tmp_path / "out"),
        generic_csv=str(tmp_path / "list.csv"),
        labels_csv=str(labels),
        clip_seconds=1.0,
        num_workers=1,
    )
    reasons = {os.path.basename(s["source"]): s["reason"] for s in m["skipped"]}
    assert reasons == {
        "fsdd_1_jackson_0.wav": "unknown label",
        "does_not_exist.wav": "missing",
    }
    recs = _records(str(tmp_path / "out"), m)
    got = {os.path.basename(d["source"]): d["labels"] for d, _ in recs.values()}
    assert got == {
        "ovos_sheep.wav": [1],
        "ovos_rooster_44k_stereo.flac": [1],
        "librosa_robin_48k.ogg": [1, 2],
        "fsdd_0_george_0.wav": [0],
        "asterisk_call-forwarding.wav": [0],
    }
    # the robin's rarest label is Bird (1 clip) -> its own group
    groups = {os.path.basename(d["source"]): s["group"] for d, s in recs.values()}
    assert groups["librosa_robin_48k.ogg"] == 2 and groups["ovos_sheep.wav"] == 1
    m2 = prep.prepare(
        str(tmp_path / "out2"),
        generic_csv=str(tmp_path / "list.csv"),
        labels_csv=str(labels),
        folds="2",
        clip_seconds=1.0,
        num_workers=1,
    )
    assert m2["num_clips"] == 2


def test_audioset_layout(tmp_path, assets_dir):
    audio = tmp_path / "audio"
    audio.mkdir()
    shutil.copy(os.path.join(assets_dir, "ovos_sheep.wav"), audio / "Yabc-DEF_123.wav")
    shutil.copy(
        os.path.join(assets_dir, "ovos_rooster_44k_stereo.flac"),
        audio / "xyz_30.000.flac",
    )
    shutil.copy(os.path.join(assets_dir, "fsdd_0_george_0.wav"), audio / "q_w_e_10.flac.wav")
    shutil.copy(os.path.join(assets_dir, "librosa_robin_48k.ogg"), audio / "rob_7.ogg")
    labels = tmp_path / "class_labels_indices.csv"
    labels.write_text(
        'index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/0jbk,"Animal"\n2,/m/07st89h,"Sheep"\n'
    )
    seg = tmp_path / "segments.csv"
    seg.write_text(
        "# Segments csv created Sun Mar  5 10:54:31 2017\n"
        "# num_ytids=5, num_segs=5, num_unique_labels=3, num_positive_labels=6\n"
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        'abc-DEF_123, 0.000, 10.000, "/m/0jbk,/m/07st89h"\n'
        'xyz, 30.000, 40.000, "/m/0jbk"\n'
        'rob, 7.000, 17.000, "/m/0jbk"\n'
        'gone, 1.000, 11.000, "/m/09x0r"\n'
        'abc-DEF_123, 0.000, 10.000, "/m/nope"\n'
    )
    m = prep.prepare(
        str(tmp_path / "out"),
        audioset_csv=str(seg),
        audio_dir=str(audio),
        labels_csv=str(labels),
        clip_seconds=1.0,
        num_workers=1,
    )
    assert m["num_clips"] == 3 and m["num_inputs"] == 5
    assert sorted(s["reason"] for s in m["skipped"]) == ["missing", "unknown label"]
    assert m["class_counts"] == {"1": 3, "2": 1}
    # user pattern
    pat = tmp_path / "seg2.csv"
    pat.write_text('q_w_e, 10.000, 20.000, "/m/09x0r"\n')
    m2 = prep.prepare(
        str(tmp_path / "out2"),
        audioset_csv=str(pat),
        audio_dir=str(audio),
        labels_csv=str(labels),
        filename_pattern="{ytid}_{start}.flac.wav",
        clip_seconds=1.0,
        num_workers=1,
    )
    assert m2["num_clips"] == 1


# A prepare run that dies (os._exit, as from a kill) once its n-th shard is on disk.
_DIE_AFTER = """
import os, sys
from panns_keras.data.prepare import writer as prep

def die(n, path):
    if n >= {n}:
        os._exit(3)

prep.prepare({out!r}, class_dir={class_dir!r}, clip_seconds=1.0, clips_per_shard=1,
             num_workers=2, on_shard=die)
"""


def _run_dying(out, class_dir, n):
    code = _DIE_AFTER.format(n=n, out=str(out), class_dir=str(class_dir))
    return subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=REPO),
        capture_output=True,
        text=True,
        timeout=240,
    )


def _run_cli(out, class_dir, env_extra=None):
    env = dict(os.environ, PYTHONPATH=REPO, **(env_extra or {}))
    cmd = [
        sys.executable,
        "-m",
        "data_prep",
        f"--out={out}",
        f"--class_dir={class_dir}",
        "--clip_seconds=1",
        "--clips_per_shard=1",
        "--num_workers=2",
        "--max_fail_fraction=0.5",
    ]
    return subprocess.run(
        cmd, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=240
    )


def test_interrupted_run_resumes_to_identical_shards(class_dir, tmp_path):
    ref = prep.prepare(
        str(tmp_path / "ref"),
        class_dir=class_dir,
        clip_seconds=1.0,
        clips_per_shard=1,
        num_workers=2,
    )
    out = str(tmp_path / "out")
    r = _run_dying(out, class_dir, 3)
    assert r.returncode == 3, r.stderr[-2000:]
    done = sorted(f for f in os.listdir(out) if f.endswith(".tfrecord"))
    assert len(done) == 3 and not os.path.exists(os.path.join(out, "manifest.json"))
    stamps = {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in done}
    r = _run_cli(out, class_dir)
    assert r.returncode == 0, r.stderr[-2000:]
    with open(os.path.join(out, "manifest.json")) as f:
        m = json.load(f)
    assert m == ref
    for f in done:  # kept, not rewritten
        assert os.stat(os.path.join(out, f)).st_mtime_ns == stamps[f]
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
    r = _run_dying(out, class_dir, 1)  # nothing left to do: no shard is written
    assert r.returncode == 0


def test_files_sharing_a_stem_both_land(tmp_path, assets_dir):
    root = tmp_path / "classes"
    (root / "dog").mkdir(parents=True)
    shutil.copy(os.path.join(assets_dir, "ovos_sheep.wav"), root / "dog" / "a.wav")
    shutil.copy(os.path.join(assets_dir, "ovos_rooster_44k_stereo.flac"), root / "dog" / "a.flac")
    shutil.copy(os.path.join(assets_dir, "fsdd_0_george_0.wav"), root / "dog" / "b.wav")
    out = str(tmp_path / "out")
    m = prep.prepare(out, class_dir=str(root), clip_seconds=0.5, num_workers=1)
    assert m["num_inputs"] == 3 and m["num_clips"] == 3 and m["num_skipped"] == 0
    recs = _records(out, m)
    # The two a's keep their extension; b keeps the extension-free id of earlier releases.
    assert sorted(recs) == ["dog/a.flac", "dog/a.wav", "dog/b"]
    assert recs["dog/a.flac"][0]["source"].endswith("a.flac")
    assert recs["dog/a.wav"][0]["source"].endswith("a.wav")
    a_wav, a_flac = (
        schema.int16_to_float(recs[k][0]["audio"]) for k in ("dog/a.wav", "dog/a.flac")
    )
    assert np.max(np.abs(a_wav - a_flac)) > 0.01  # two different recordings

    # A CSV: the same rule, and the same path listed twice is still one clip.
    listing = root / "clips.csv"
    listing.write_text("dog/a.wav,dog,f1\ndog/a.flac,dog,f2\ndog/b.wav,dog,f1\ndog/a.wav,dog,f1\n")
    m2 = prep.prepare(
        str(tmp_path / "out2"), generic_csv=str(listing), clip_seconds=0.5, num_workers=1
    )
    assert m2["num_clips"] == 3
    assert [(s["clip_id"], s["reason"]) for s in m2["skipped"]] == [("dog/a.wav", "duplicate")]
    folds = {k: v[0]["fold"] for k, v in _records(str(tmp_path / "out2"), m2).items()}
    assert folds == {"dog/a.wav": "f1", "dog/a.flac": "f2", "dog/b": "f1"}
    # --folds keeps the ids of the whole listing
    m3 = prep.prepare(
        str(tmp_path / "out3"),
        generic_csv=str(listing),
        folds="f2",
        clip_seconds=0.5,
        num_workers=1,
    )
    assert sorted(_records(str(tmp_path / "out3"), m3)) == ["dog/a.flac"]


def test_cli_failure_threshold_is_one_line(class_dir, tmp_path, cli):
    """More failures than --max_fail_fraction: one error line naming the manifest and the
    count; an old flag spelling still works with a one-line note."""
    out = tmp_path / "out"
    flags = ["--clip_seconds=1", "--num_workers=1", "--max_fail_fraction=0.1"]
    r = cli("prepare", f"--prepare_output_dir={out}", f"--class_dir={class_dir}", *flags)
    assert r.returncode == 1, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert lines[0] == (
        "panns-keras prepare: note: --prepare_output_dir is deprecated and goes "
        "away in the next release; use --out"
    )
    errors = [ln for ln in lines if "error" in ln]
    assert errors == [
        f"panns-keras prepare: error: {out}/manifest.json: 3 of 11 inputs failed "
        "(1 not finite, 1 unreadable, 1 zero-length), fail fraction 0.273 > "
        "--max_fail_fraction 0.1; the manifest lists each with its reason"
    ]
    assert "Traceback" not in r.stderr and "\r" not in r.stderr  # not a terminal: plain lines
    assert lines[-2].startswith("prepare: 11/11 clips (100.0%)") and lines[-2].endswith("3 failed")
    assert json.loads((out / "manifest.json").read_text())["num_skipped"] == 3
