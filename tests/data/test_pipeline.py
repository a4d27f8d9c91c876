import collections
import os

import numpy as np
import pytest
import tensorflow as tf

from panns_keras.data import config as config_lib
from panns_keras.data import pipeline
from tests.helpers.data_shards import write_shards

COUNTS = {0: 500, 1: 50, 2: 5, 3: 5}  # class 0 is 100x the rarest


def _config(train_glob, eval_glob="", batch=16, **data):
    c = config_lib.default_config()
    c.data.train_files = train_glob
    c.data.eval_files = eval_glob or train_glob
    c.data.clip_samples = 64
    c.data.num_classes = 4
    c.data.mixup = "none"
    c.data.shuffle_buffer = 64
    c.train.batch_size = batch
    for k, v in data.items():
        c.data[k] = v
    return c


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("imbalanced"))
    groups = []
    for cls, n in COUNTS.items():  # class 0 in 4 shards, others one shard each
        parts = 4 if cls == 0 else 1
        for _ in range(parts):
            groups.append((cls, [[cls]] * (n // parts)))
    write_shards(d, groups)
    return d


def _class_counts(ds, batches):
    counts = collections.Counter()
    for b in ds.take(batches):
        t = b["target"].numpy()
        assert np.all(t.sum(axis=1) == 1)
        counts.update(np.argmax(t, axis=1).tolist())
    return counts


def test_balanced_sampling_is_uniform_over_classes(imbalanced):
    ds = pipeline.make_train_dataset(_config(os.path.join(imbalanced, "*.tfrecord")))
    counts = _class_counts(ds, 200)  # 3200 examples
    total = sum(counts.values())
    for cls in COUNTS:  # every class within 15 % of uniform (binomial sd is ~3 %)
        assert abs(counts[cls] / total - 0.25) < 0.25 * 0.15, counts


def test_unbalanced_reproduces_raw_frequencies(imbalanced):
    c = _config(os.path.join(imbalanced, "*.tfrecord"), balanced=False)
    n = sum(COUNTS.values())
    counts = _class_counts(pipeline.make_train_dataset(c), 5 * n // 16)  # ~5 epochs
    total = sum(counts.values())
    for cls, k in COUNTS.items():
        expected = k / n
        assert abs(counts[cls] / total - expected) < max(0.1 * expected, 0.006), (
            cls,
            counts,
        )


def test_train_is_deterministic_given_seed(imbalanced):
    c = _config(os.path.join(imbalanced, "*.tfrecord"), mixup="waveform")
    a = [b["waveform"].numpy() for b in pipeline.make_train_dataset(c).take(3)]
    b = [b["waveform"].numpy() for b in pipeline.make_train_dataset(c).take(3)]
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    c.seed = 1
    d = [b["waveform"].numpy() for b in pipeline.make_train_dataset(c).take(3)]
    assert not np.array_equal(np.stack(a), np.stack(d))


# With mixup (in the model's domain or on the waveform) the pipeline feeds 2B clips; the
# training step mixes them (train/step.py).
@pytest.mark.parametrize("mode,rows", [("logmel", 16), ("waveform", 16), ("none", 8)])
def test_batch_layout_per_mixup_mode(imbalanced, mode, rows):
    c = _config(os.path.join(imbalanced, "*.tfrecord"), batch=16, mixup=mode)
    ctx = tf.distribute.InputContext(
        num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2
    )
    b = next(iter(pipeline.make_train_dataset(c, ctx)))
    assert set(b) == {"waveform", "target"}
    assert b["waveform"].shape == (rows, 64) and b["waveform"].dtype == tf.float32
    assert b["target"].shape == (rows, 4)
    t = b["target"].numpy()
    np.testing.assert_array_equal(t.sum(axis=1), 1.0)  # single-label clips, not mixed


@pytest.fixture
def small_set(tmp_path):
    d = str(tmp_path / "small")
    files = write_shards(d, [(0, [[0]] * 5), (1, [[1]] * 3), (2, [[2, 0]] * 5)])
    return d, files


def _eval_ids(ds):
    ids, rows = [], 0
    for b in ds:
        m = b["mask"].numpy()
        rows += len(m)
        assert set(b) == {"waveform", "target", "clip_id", "mask"}
        ids += [c.decode() for c, k in zip(b["clip_id"].numpy(), m) if k == 1]
        assert np.all(b["waveform"].numpy()[m == 0] == 0)
    return ids, rows


def test_eval_sees_every_clip_once_in_order(small_set):
    d, _files = small_set
    c = _config(os.path.join(d, "*.tfrecord"), batch=4)
    ids, rows = _eval_ids(pipeline.make_eval_dataset(c))
    expected = [
        f"g{g}_s{k}_c{j}" for k, (g, n) in enumerate([(0, 5), (1, 3), (2, 5)]) for j in range(n)
    ]
    assert ids == expected and rows == 16  # 13 clips, last batch padded with 3 rows
    # two input pipelines: together every clip exactly once
    seen = []
    for pid in range(2):
        ctx = tf.distribute.InputContext(2, pid, 2)
        got, _ = _eval_ids(pipeline.make_eval_dataset(c, ctx))
        seen += got
    assert sorted(seen) == sorted(expected)


def _corrupt(path, how):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    if how == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) - 50]
    with open(path, "wb") as f:
        f.write(bytes(data))


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_corrupted_shard_error_names_the_file(small_set, how):
    d, files = small_set
    _corrupt(files[1], how)
    c = _config(os.path.join(d, "*.tfrecord"), batch=4)
    with pytest.raises(tf.errors.InvalidArgumentError, match=os.path.basename(files[1])):
        for _ in pipeline.make_eval_dataset(c):
            pass
    c.data.balanced = False
    with pytest.raises(tf.errors.InvalidArgumentError, match=os.path.basename(files[1])):
        for _ in pipeline.make_train_dataset(c).take(50):
            pass


def test_skip_corrupt_counts_and_continues(small_set):
    d, files = small_set
    _corrupt(files[1], "flip")
    c = _config(os.path.join(d, "*.tfrecord"), batch=4, skip_corrupt=True)
    before = pipeline.corrupt_shard_count()
    ids, _ = _eval_ids(pipeline.make_eval_dataset(c))
    assert pipeline.corrupt_shard_count() == before + 1
    assert [i for i in ids if i.startswith(("g0", "g2"))] == [f"g0_s0_c{j}" for j in range(5)] + [
        f"g2_s2_c{j}" for j in range(5)
    ]
    assert len([i for i in ids if i.startswith("g1")]) < 3
    train = pipeline.make_train_dataset(c)
    assert len(list(train.take(5))) == 5


def test_read_manifest_and_missing_manifest(small_set, tmp_path):
    d, _files = small_set
    m = pipeline.read_manifest(d)
    assert [s["group"] for s in m["shards"]] == [0, 1, 2]
    os.remove(os.path.join(d, "manifest.json"))
    with pytest.raises(ValueError, match="manifest"):
        pipeline.make_train_dataset(_config(os.path.join(d, "*.tfrecord")))
    with pytest.raises(FileNotFoundError):
        pipeline.list_files(str(tmp_path / "nothing-*.tfrecord"))
