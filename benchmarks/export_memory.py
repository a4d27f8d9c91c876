"""Peak memory and wall time of each export format, one fresh process per format.

    .venv/bin/python benchmarks/export_memory.py [--arch cnn14] [--formats onnx,...]
        [--representative tests/assets/audio] [--window_seconds 10]

A child builds the model (seeded random weights) and saves it as a ``.keras`` file. Then,
for each format, a small watcher process (no TensorFlow, a few MB) runs ``panns-keras
export --model FILE.keras --formats FORMAT`` (the verb users run, its re-check after export
included) and reports its child's peak RSS (``ru_maxrss`` of the one process it waited
for). The watcher is needed because a process started by ``subprocess`` starts from its
parent's ``ru_maxrss``: a parent holding TensorFlow and the model would hide small peaks.
Prints one line per format: peak RSS, wall time, size of what was written.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

ROOT = Path(__file__).resolve().parents[1]
FORMATS = (
    "savedmodel,tflite_float32,tflite_float16,tflite_dynamic_int8,tflite_int8,onnx,"
    "mediapipe,mediapipe_int8"
)

_ARCH = flags.DEFINE_string("arch", "cnn14", "Model to export (seeded random weights).")
_FORMATS = flags.DEFINE_list("formats", FORMATS, "Export formats, one process each.")
_REPRESENTATIVE = flags.DEFINE_string(
    "representative",
    str(ROOT / "tests" / "assets" / "audio"),
    "Calibration / verification audio (passed to export --representative).",
)
_WINDOW = flags.DEFINE_float("window_seconds", 10.0, "TFLite input length.")

WATCHER = """
import resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sec = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
err = (rc.stderr.strip().splitlines() or [""])[-1][-200:]
print(f"rc={rc.returncode} peak_gb={peak:.2f} seconds={sec:.1f} err={err}")
"""

BUILD = """
import sys
import panns_keras
panns_keras.build_model(sys.argv[1], seed=0).save(sys.argv[2])
"""


def main(argv):
    del argv
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        keras_file = work / f"{_ARCH.value}.keras"
        subprocess.run(
            [sys.executable, "-c", BUILD, _ARCH.value, str(keras_file)],
            check=True,
            capture_output=True,
        )
        print(
            f"{_ARCH.value}, seeded random weights, window {_WINDOW.value} s, "
            f"representative {_REPRESENTATIVE.value}"
        )
        for fmt in _FORMATS.value:
            out = work / fmt
            cmd = [
                sys.executable,
                "-m",
                "panns_keras",
                "export",
                f"--model={keras_file}",
                f"--out={out}",
                f"--formats={fmt}",
                f"--window_seconds={_WINDOW.value}",
                f"--representative={_REPRESENTATIVE.value}",
            ]
            p = subprocess.run(
                [sys.executable, "-c", WATCHER, *cmd], capture_output=True, text=True, check=False
            )
            fields = dict(kv.split("=", 1) for kv in p.stdout.split(" ", 3) if "=" in kv)
            size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
            status = "ok" if fields.get("rc") == "0" else f"FAILED: {fields.get('err', '')}"
            print(
                f"{fmt:<22} peak RSS {fields.get('peak_gb', '?'):>5} GB  "
                f"{fields.get('seconds', '?'):>6} s  {size:8.1f} MB  {status}",
                flush=True,
            )
            time.sleep(0.1)


if __name__ == "__main__":
    app.run(main)
