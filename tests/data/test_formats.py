"""panns_keras.data.formats: the one labels.csv rule, manifest versions, the fold field, and
k-fold selection from TFRecords without leaks (prepare -> pipeline)."""

import json
import os

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from panns_keras import labels as labels_lib
from panns_keras.data import config as config_lib
from panns_keras.data import formats, pipeline, schema
from panns_keras.data.prepare import inputs as inputs_lib
from panns_keras.data.prepare import writer as prep

SR = 8000
N = 200  # samples per clip
FOLDS = ("1", "2", "3", "4")


# ---------------------------------------------------------------------------- labels.csv
def test_one_label_rule_for_every_reader(tmp_path):
    text = 'index,mid,display_name\n2,/m/c,"Sheep, domestic"\n0,/m/a,Speech\n\n1,/m/b,Dog\n'
    (tmp_path / "h.csv").write_text(text)
    (tmp_path / "n.csv").write_text(text.split("\n", 1)[1])  # no header
    want = [
        formats.Label(0, "/m/a", "Speech"),
        formats.Label(1, "/m/b", "Dog"),
        formats.Label(2, "/m/c", "Sheep, domestic"),
    ]
    for name in ("h.csv", "n.csv"):
        path = tmp_path / name
        assert formats.read_labels_csv(path) == want
        assert inputs_lib.read_labels_csv(str(path)) == want  # prepare's is the same
        assert labels_lib.read_label_file(path) == [(lb.mid, lb.display_name) for lb in want]
    # Written and read back unchanged, by either writer.
    labels_lib.write_label_file(tmp_path / "w.csv", [(lb.mid, lb.display_name) for lb in want])
    assert formats.read_labels_csv(tmp_path / "w.csv") == want
    assert (tmp_path / "w.csv").read_text() == formats.format_labels_csv(want)


@pytest.mark.parametrize(
    "text",
    [
        "index,mid,display_name\n0,/m/a,A\n2,/m/c,C\n",  # gap
        "0,/m/a,A\n0,/m/b,B\n",  # duplicate
        "0,/m/a\n",  # too few fields
        "x,/m/a,A\n",
    ],  # not an index
)
def test_label_rule_rejects(tmp_path, text):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(formats.FormatError):
        labels_lib.read_label_file(tmp_path / "bad.csv")
    with pytest.raises(ValueError):  # prepare's callers catch ValueError
        inputs_lib.read_labels_csv(str(tmp_path / "bad.csv"))


# ---------------------------------------------------------------------------- manifest, record
def test_manifest_v1_reads_as_current(tmp_path):
    (tmp_path / formats.MANIFEST_NAME).write_text(
        json.dumps({"shards": [{"file": "train-00000-of-00001.tfrecord", "group": 3}]})
    )
    for m in (formats.read_manifest(str(tmp_path)), pipeline.read_manifest(str(tmp_path))):
        assert m["shards"] == [{"file": "train-00000-of-00001.tfrecord", "group": 3, "fold": ""}]
    with pytest.raises(formats.FormatError):
        formats.parse_manifest({"version": 99, "shards": []})


def test_record_fold_round_trip_and_old_records():
    wav = np.linspace(-0.5, 0.5, N).astype(np.float32)
    old = schema.serialize_example(wav, [1], "a", "", SR, N)  # no fold: as before folds existed
    new = schema.serialize_example(wav, [1], "a", "", SR, N, fold="spk 3")
    assert formats.FOLD.encode() not in old and len(new) > len(old)
    assert schema.example_to_numpy(old)[formats.FOLD] == ""
    assert schema.example_to_numpy(new)[formats.FOLD] == "spk 3"
    assert schema.parse_example(tf.constant(new))[formats.FOLD].numpy() == b"spk 3"
    assert schema.parse_example(tf.constant(old))[formats.FOLD].numpy() == b""


def test_fold_selected():
    assert formats.fold_selected("2", folds="1,2") and not formats.fold_selected("3", "1,2")
    assert not formats.fold_selected("", folds="1")  # no fold: never in an include list
    assert formats.fold_selected("", exclude_folds="1")
    assert not formats.fold_selected("1", exclude_folds=["1"])
    with pytest.raises(formats.FormatError):
        formats.check_fold_selection("1,2", "2")


def test_class_folder_fold_pattern(tmp_path):
    for rel in ("dog/alice_1.wav", "dog/bob_2.wav", "cat/alice_3.wav", "cat/x.wav"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        sf.write(tmp_path / rel, np.zeros(N, np.float32), SR)
    listing = inputs_lib.list_class_folders(str(tmp_path), fold_pattern=r"/([a-z]+)_")
    want = {"cat/alice_3": "alice", "cat/x": "", "dog/alice_1": "alice", "dog/bob_2": "bob"}
    assert {c.clip_id: c.fold for c in listing.clips} == want
    only = inputs_lib.list_class_folders(str(tmp_path), fold_pattern=r"/([a-z]+)_", folds="bob")
    assert [c.clip_id for c in only.clips] == ["dog/bob_2"]


# ---------------------------------------------------------------------------- k-fold from shards
def _clip_value(k: int) -> int:
    return 100 * (k + 1)  # clip k is a constant int16 signal: its id survives the pipeline


@pytest.fixture(scope="module")
def fold_data(tmp_path_factory):
    """prepare's output of 24 clips (3 classes, folds 1-4 from the CSV's fold column)."""
    root = tmp_path_factory.mktemp("folds")
    rows = ["path,labels,fold"]
    for k in range(24):
        sf.write(root / f"c{k}.wav", np.full(N, _clip_value(k), np.int16), SR, subtype="PCM_16")
        rows.append(f"c{k}.wav,class{k % 3},{FOLDS[k // 6]}")
    (root / "list.csv").write_text("\n".join(rows) + "\n")
    out = str(root / "out")
    manifest = prep.prepare(
        out,
        generic_csv=str(root / "list.csv"),
        sample_rate=SR,
        clip_seconds=N / SR,
        clips_per_shard=4,
        num_workers=1,
    )
    fold_of = {k: FOLDS[k // 6] for k in range(24)}
    return out, manifest, fold_of


def _config(train_glob, **data):
    c = config_lib.default_config()
    c.data.train_files = c.data.eval_files = train_glob
    c.data.sample_rate, c.data.clip_samples, c.data.num_classes = SR, N, 3
    c.data.mixup = "none"
    c.data.shuffle_buffer = 8
    c.data.random_crop = False
    c.train.batch_size = 4
    for k, v in data.items():
        c.data[k] = v
    return c


def _ids(waveforms) -> set[int]:
    values = np.rint(np.asarray(waveforms)[:, 0] * formats.INT16_SCALE).astype(int)
    return {int(v) // 100 - 1 for v in values}


def _train_ids(config, batches=40) -> set[int]:
    ds = pipeline.make_train_dataset(config).take(batches)
    return set().union(*(_ids(b["waveform"]) for b in ds))


def _eval_ids(config) -> set[int]:
    out = set()
    for b in pipeline.make_eval_dataset(config):
        keep = np.asarray(b["mask"]) > 0
        out |= _ids(np.asarray(b["waveform"])[keep])
    return out


def test_prepare_writes_folds(fold_data):
    out, manifest, fold_of = fold_data
    assert manifest["version"] == formats.MANIFEST_VERSION
    assert manifest["fold_counts"] == {f: 6 for f in FOLDS}
    for shard in manifest["shards"]:  # single-fold shards, records carry the same fold
        recs = [
            schema.example_to_numpy(r.numpy())
            for r in tf.data.TFRecordDataset(os.path.join(out, shard["file"]))
        ]
        assert recs and {r[formats.FOLD] for r in recs} == {shard["fold"]}
        for r in recs:
            assert fold_of[int(r[formats.CLIP_ID][1:])] == shard["fold"]


@pytest.mark.parametrize("balanced", [True, False])
def test_kfold_selection_never_leaks(fold_data, balanced):
    out, _, fold_of = fold_data
    everything = set(fold_of)
    for f in FOLDS:
        c = _config(formats.shard_pattern(out), eval_folds=f, balanced=balanced)
        held_out = {k for k, v in fold_of.items() if v == f}
        train, evaluated = _train_ids(c), _eval_ids(c)
        assert evaluated == held_out
        assert train == everything - held_out  # every other clip is seen, none held out
        assert not train & evaluated


def test_fold_filter_on_mixed_shards(tmp_path):
    """Shards that mix folds (or a v1 manifest without shard folds) are filtered per record."""
    fn = "train-00000-of-00001.tfrecord"
    with tf.io.TFRecordWriter(str(tmp_path / fn)) as w:
        for k in range(12):
            w.write(
                schema.serialize_example(
                    np.full(N, _clip_value(k), np.int16),
                    [k % 3],
                    f"c{k}",
                    "",
                    SR,
                    N,
                    fold=str(k % 3),
                )
            )
    (tmp_path / formats.MANIFEST_NAME).write_text(
        json.dumps({"shards": [{"file": fn, "group": 0, "num_clips": 12}]})
    )
    c = _config(str(tmp_path / "*.tfrecord"), eval_folds="1", train_folds="0")
    assert _eval_ids(c) == {1, 4, 7, 10}
    assert _train_ids(c, 20) == {0, 3, 6, 9}


def test_unknown_fold_selects_no_shard(fold_data):
    files = pipeline.list_files(formats.shard_pattern(fold_data[0]))
    assert pipeline.select_fold_files(files, ("2",), ()) != files
    with pytest.raises(ValueError, match="no shard"):
        pipeline.select_fold_files(files, ("9",), ())


def test_list_files_locally_as_tensorflow_lists(tmp_path):
    """Local shards are listed without TensorFlow, by the same rules as ``tf.io.gfile``'s
    glob (hidden files included; ``*.tmp`` left out; comma-separated patterns)."""
    for name in [
        "a-0.tfrecord",
        "a-1.tfrecord",
        ".hidden-2.tfrecord",
        "a-3.tfrecord.tmp",
        "b-0.tfrecord",
        "notes.txt",
    ]:
        (tmp_path / name).write_bytes(b"")
    for patterns in [
        [f"{tmp_path}/*.tfrecord"],
        [f"{tmp_path}/a-*.tfrecord*"],
        [f"{tmp_path}/a-0.tfrecord", f"{tmp_path}/b-*.tfrecord"],
        [str(tmp_path / "a-?.tfrecord"), str(tmp_path / "b-0.tfrecord")],
        [str(tmp_path / "a-1.tfrecord")],
    ]:
        found = {f for p in patterns for f in tf.io.gfile.glob(p)}
        by_tf = sorted(f for f in found if not f.endswith(".tmp"))
        assert formats.list_files(patterns) == by_tf, patterns
        assert formats.list_files(", ".join(patterns)) == by_tf, patterns
    with pytest.raises(FileNotFoundError):
        formats.list_files(f"{tmp_path}/nothing-*.tfrecord")
