"""benchmarks/train_step_jax.py end to end on CPU: the smallest configuration (Cnn6, batch 2,
1 s clips, 2 timed steps, float32) runs in a subprocess under KERAS_BACKEND=jax and writes a
JSON result with a positive throughput, a finite falling loss and weights that every step
moves. Skipped where JAX is not installed."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jax")
pytest.importorskip("keras")

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "train_step_jax.py"


@pytest.mark.slow  # a JAX process of its own
def test_train_step_jax_tiny_cpu(tmp_path):
    out = tmp_path / "results.json"
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    cmd = [sys.executable, str(SCRIPT), "--models=cnn6", "--precisions=float32",
           "--batch_size=2", "--steps=2", "--clip_seconds=1", "--matmul_size=256",
           f"--out_json={out}"]  # fmt: skip
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert [f.name for f in tmp_path.iterdir()] == [out.name]  # no temp file left behind

    (r,) = json.loads(out.read_text())
    assert "error" not in r, r.get("traceback")
    assert (r["model"], r["precision"], r["batch"]) == ("cnn6", "float32", 2)
    assert (r["clips_in_per_step"], r["samples"], r["steps"]) == (4, 32000, 2)
    assert r["keras_backend"] == "jax" and r["platform"] == "cpu"
    for key in ("clips_per_s", "step_ms", "compile_s", "matmul_tflops", "mfu", "peak_mem_gb"):
        assert math.isfinite(r[key]) and r[key] > 0, (key, r[key])
    assert r["step_ms"] == pytest.approx(1e3 * r["batch"] / r["clips_per_s"])
    assert r["xla_flops_per_step"] is None or r["xla_flops_per_step"] > 0

    # A finite loss that falls: the same batch three times (warm-up + 2 timed steps).
    assert math.isfinite(r["loss_first"]) and math.isfinite(r["loss_last"])
    assert r["loss_last"] < r["loss_first"]
    # Weights move in the first step and again in the later ones.
    init, after_first, after_last = r["param_abs_sum"]
    assert init != after_first and after_first != after_last
    # One line per configuration on stdout.
    assert any(line.startswith("cnn6") and "clips/s" in line for line in p.stdout.splitlines())
