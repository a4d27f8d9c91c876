"""``train/inputs``: local shards listed without TensorFlow, by the pipeline's own rules."""

import pytest

from panns_keras.data import pipeline
from panns_keras.train import inputs


def test_local_listing_equals_the_pipelines(tmp_path):
    for name in ["a-0.tfrecord", "a-1.tfrecord", ".hidden-2.tfrecord", "a-3.tfrecord.tmp",
                 "b-0.tfrecord", "notes.txt"]:  # fmt: skip
        (tmp_path / name).write_bytes(b"")
    for patterns in [
        f"{tmp_path}/*.tfrecord",
        f"{tmp_path}/a-*.tfrecord*",
        f"{tmp_path}/a-0.tfrecord, {tmp_path}/b-*.tfrecord",
        [str(tmp_path / "a-?.tfrecord"), str(tmp_path / "b-0.tfrecord")],
        str(tmp_path / "a-1.tfrecord"),
    ]:
        assert inputs._list_files(patterns) == pipeline.list_files(patterns), patterns
    with pytest.raises(FileNotFoundError):
        inputs._list_files(f"{tmp_path}/nothing-*.tfrecord")
    with pytest.raises(FileNotFoundError):
        pipeline.list_files(f"{tmp_path}/nothing-*.tfrecord")
