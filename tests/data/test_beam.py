import os
import shutil

import pytest

from panns_keras.data.prepare import beam  # imports apache_beam lazily
from panns_keras.data.prepare import writer as prep

pytest.importorskip("apache_beam")

NAMES = {
    "animal": ["ovos_sheep.wav", "librosa_robin_48k.ogg"],
    "speech": ["fsdd_0_george_0.wav"],
}


def test_beam_direct_runner_equals_local(tmp_path, assets_dir):
    root = tmp_path / "classes"
    for cls, names in NAMES.items():
        (root / cls).mkdir(parents=True)
        for n in names:
            shutil.copy(os.path.join(assets_dir, n), root / cls / n)
    (root / "speech" / "empty.wav").write_bytes(b"")
    kw = {"class_dir": str(root), "clip_seconds": 1.0, "clips_per_shard": 1}
    local = prep.prepare(str(tmp_path / "local"), num_workers=1, **kw)
    beamed = beam.prepare_beam(
        str(tmp_path / "beam"), pipeline_options=["--runner=DirectRunner"], **kw
    )
    assert beamed == local
    for s in local["shards"]:
        a = (tmp_path / "local" / s["file"]).read_bytes()
        b = (tmp_path / "beam" / s["file"]).read_bytes()
        assert a == b
    assert [x["reason"] for x in beamed["skipped"]] == ["zero-length"]
