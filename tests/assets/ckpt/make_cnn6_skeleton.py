"""Build ``cnn6_skeleton/`` from the genuine Cnn6 golden checkpoints (maintainer script).

Usage: ``python tests/assets/ckpt/make_cnn6_skeleton.py /path/to/golden`` where the folder
holds ``Cnn6.npz`` and ``ckpt/Cnn6_golden_{zip,legacy}.pth``. Each large tensor's raw bytes
are located in the genuine file (they occur exactly once), cut out and recorded in
``skeleton.json``; ``tests/convert/conftest.py`` puts them back. The script checks that the
rebuild reproduces both files bit for bit.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
OUT = HERE / "cnn6_skeleton"
FORMATS = ("zip", "legacy")


def _conftest():
    spec = importlib.util.spec_from_file_location(
        "_convert_conftest", REPO / "tests" / "convert" / "conftest.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(golden: Path) -> None:
    sys.path.insert(0, str(REPO))
    from panns_keras.convert.torch_format import read_torch_checkpoint

    conftest = _conftest()
    z = np.load(golden / "Cnn6.npz")
    meta = json.loads(str(z["meta"]))
    OUT.mkdir(exist_ok=True)

    blobs: dict[str, bytes] = {}
    seeded = {}
    for name in meta["seeded_names"]:
        entry = {
            "seed": int(z["seed/" + name]),
            "shape": [int(n) for n in z["shape/" + name]],
            "scale_bits": int(np.float32(z["scale/" + name]).view(np.uint32)),
            "sha256": meta["seeded_sha256"][name],
        }
        weights = conftest.seeded_tensor(entry["seed"], entry["shape"], entry["scale_bits"])
        blobs[name] = np.ascontiguousarray(weights, dtype="<f4").tobytes()
        assert hashlib.sha256(blobs[name]).hexdigest() == entry["sha256"]
        seeded[name] = entry

    zip_raw = (golden / "ckpt" / "Cnn6_golden_zip.pth").read_bytes()
    state = read_torch_checkpoint(golden / "ckpt" / "Cnn6_golden_zip.pth")
    frontend_raw = bytearray()
    frontend_entries = {}
    for name in meta["derived_names"]:
        # The storage may hold the tensor transposed (the STFT bases have strides
        # (1, numel, 513)): take the axis order whose bytes occur in the file.
        weights = state[name]
        candidates = [
            np.ascontiguousarray(weights.transpose(perm), dtype="<f4").tobytes()
            for perm in itertools.permutations(range(weights.ndim))
        ]
        found = [blob for blob in candidates if zip_raw.find(blob) >= 0]
        assert found, f"{name}: storage bytes not found"
        blob = found[0]
        frontend_entries[name] = [len(frontend_raw), len(blob)]
        frontend_raw += blob
        blobs[name] = blob
    (OUT / "frontend.zlib").write_bytes(zlib.compress(bytes(frontend_raw), 9))

    files = {}
    for fmt in FORMATS:
        name = f"Cnn6_golden_{fmt}.pth"
        raw = (golden / "ckpt" / name).read_bytes()
        cuts = []
        for key, blob in blobs.items():
            at = raw.find(blob)
            assert at >= 0 and raw.find(blob, at + 1) < 0, f"{key}: not found exactly once"
            cuts.append((at, len(blob), key))
        cuts.sort()
        gapped = bytearray()
        inserts = []
        cursor = 0
        for at, nbytes, key in cuts:
            assert at >= cursor, "overlapping tensors"
            gapped += raw[cursor:at]
            inserts.append({"at": at, "name": key})
            cursor = at + nbytes
        gapped += raw[cursor:]
        (OUT / f"Cnn6_golden_{fmt}.gapped").write_bytes(bytes(gapped))
        files[fmt] = {
            "name": name,
            "gapped": f"Cnn6_golden_{fmt}.gapped",
            "size": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest(),
            "inserts": inserts,
        }

    spec = {
        "comment": "Skeletons of the Cnn6 golden checkpoints; see tests/convert/conftest.py.",
        "files": files,
        "seeded": seeded,
        "frontend": {"file": "frontend.zlib", "entries": frontend_entries},
    }
    (OUT / "skeleton.json").write_text(json.dumps(spec, indent=1) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        for fmt in FORMATS:
            rebuilt = conftest.rebuild_from_skeleton(OUT, fmt, Path(tmp) / f"{fmt}.pth")
            assert rebuilt.read_bytes() == (golden / "ckpt" / files[fmt]["name"]).read_bytes()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
