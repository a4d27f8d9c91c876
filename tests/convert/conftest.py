"""Fixtures giving genuine PANNs ``torch.save`` checkpoints (LeeNet11 and Cnn6, both formats).

The LeeNet11 files live verbatim in ``tests/assets/ckpt/``. The Cnn6 files (23 MB each) are
stored as small skeletons in ``tests/assets/ckpt/cnn6_skeleton/``: each genuine file with the
raw bytes of its large tensors cut out (``*.gapped``), a list of where those bytes go back
(``skeleton.json``), the seeded tensors' seeds, shapes and scales, and the front-end buffers
(STFT bases, mel matrix) compressed once in ``frontend.zlib``. The fixture regenerates the
seeded tensors with the golden weight rule, re-inserts every cut range and checks the sha256
of the result against the genuine file's, so the rebuilt files are bit-exact copies.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import numpy as np
import pytest

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CKPT_DIR = ASSETS / "ckpt"
CNN6_SKELETON_DIR = CKPT_DIR / "cnn6_skeleton"


def seeded_tensor(seed: int, shape: list[int], scale_bits: int) -> np.ndarray:
    """The golden weight rule: seeded float32 normals times a float32 scale."""
    scale = np.array(scale_bits, dtype=np.uint32).view(np.float32)
    rng = np.random.default_rng(int(seed))
    return rng.standard_normal(tuple(shape), dtype=np.float32) * np.float32(scale)


def rebuild_from_skeleton(skeleton_dir: Path, fmt: str, out_path: Path) -> Path:
    """Rebuild one genuine checkpoint file from its skeleton; assert its sha256."""
    spec = json.loads((skeleton_dir / "skeleton.json").read_text())
    frontend_raw = zlib.decompress((skeleton_dir / spec["frontend"]["file"]).read_bytes())
    blobs: dict[str, bytes] = {}
    for name, (start, nbytes) in spec["frontend"]["entries"].items():
        blobs[name] = frontend_raw[start : start + nbytes]
    for name, entry in spec["seeded"].items():
        weights = seeded_tensor(entry["seed"], entry["shape"], entry["scale_bits"])
        blob = np.ascontiguousarray(weights, dtype="<f4").tobytes()
        assert hashlib.sha256(blob).hexdigest() == entry["sha256"], (
            f"numpy no longer regenerates the seeded tensor {name} bit-exactly"
        )
        blobs[name] = blob

    file_spec = spec["files"][fmt]
    gapped = (skeleton_dir / file_spec["gapped"]).read_bytes()
    out = bytearray()
    cursor = 0
    for insert in file_spec["inserts"]:  # sorted by position in the genuine file
        take = insert["at"] - len(out)
        out += gapped[cursor : cursor + take]
        cursor += take
        out += blobs[insert["name"]]
    out += gapped[cursor:]
    assert len(out) == file_spec["size"]
    assert hashlib.sha256(out).hexdigest() == file_spec["sha256"], (
        f"rebuilt {file_spec['name']} differs from the genuine file"
    )
    out_path.write_bytes(bytes(out))
    return out_path


@pytest.fixture(scope="session")
def leenet11_ckpts() -> dict[str, Path]:
    """Genuine LeeNet11 golden checkpoints: ``{'zip': path, 'legacy': path}`` (read-only use)."""
    return {fmt: CKPT_DIR / f"LeeNet11_golden_{fmt}.pth" for fmt in ("zip", "legacy")}


@pytest.fixture(scope="session")
def cnn6_ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Genuine Cnn6 golden checkpoints rebuilt bit-exactly: ``{'zip': path, 'legacy': path}``."""
    out_dir = tmp_path_factory.mktemp("cnn6_ckpt")
    return {
        fmt: rebuild_from_skeleton(CNN6_SKELETON_DIR, fmt, out_dir / f"Cnn6_golden_{fmt}.pth")
        for fmt in ("zip", "legacy")
    }
