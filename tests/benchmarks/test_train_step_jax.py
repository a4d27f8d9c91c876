"""benchmarks/train_step_jax.py end to end on CPU: the smallest configuration (Cnn6, batch 2,
1 s clips, 2 timed steps, float32) runs in a subprocess under KERAS_BACKEND=jax and writes a
JSON result with a positive throughput, a finite falling loss and weights that every step
moves; with a fresh persistent compilation cache (a miss, recorded) and a one-step profile
reduced by benchmarks/profile_reduce.py (XLA:CPU op times by kind of op). Skipped where JAX
is not installed."""

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
           f"--out_json={out}", f"--cache_dir={tmp_path / 'cache'}",
           f"--profile_dir={tmp_path / 'profile'}", "--profile_steps=1"]  # fmt: skip
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    # No temp file left behind.
    assert sorted(f.name for f in tmp_path.iterdir()) == ["cache", "profile", out.name]

    (r,) = json.loads(out.read_text())
    assert "error" not in r, r.get("traceback")
    assert (r["model"], r["precision"], r["batch"]) == ("cnn6", "float32", 2)
    assert (r["clips_in_per_step"], r["samples"], r["steps"]) == (4, 32000, 2)
    assert r["keras_backend"] == "jax" and r["platform"] == "cpu"
    for key in ("clips_per_s", "step_ms", "compile_s", "matmul_tflops", "mfu", "peak_mem_gb"):
        assert math.isfinite(r[key]) and r[key] > 0, (key, r[key])
    assert r["step_ms"] == pytest.approx(1e3 * r["batch"] / r["clips_per_s"])
    # A fresh cache: a miss, the compile time is this run's XLA compile, and entries written.
    assert r["cache_hit"] is False and 0 < r["lower_s"] < r["compile_s"]
    assert r["compile_s_uncached"] == pytest.approx(r["compile_s"] - r["lower_s"])
    assert any((tmp_path / "cache").iterdir())
    assert r["xla_flops_per_step"] is None or r["xla_flops_per_step"] > 0

    # A finite loss that falls: the same batch three times (warm-up + 2 timed steps).
    assert math.isfinite(r["loss_first"]) and math.isfinite(r["loss_last"])
    assert r["loss_last"] < r["loss_first"]
    # Weights move in the first step and again in the later ones.
    init, after_first, after_last = r["param_abs_sum"]
    assert init != after_first and after_first != after_last
    # One line per configuration on stdout.
    assert any(line.startswith("cnn6") and "clips/s" in line for line in p.stdout.splitlines())

    # The profile: XLA:CPU op events, every one matched to the step's HLO, classed.
    prof = tmp_path / "profile"
    tag = "cnn6_float32_b2"
    assert {f.name for f in prof.iterdir()} == {
        f"{tag}.{ext}" for ext in ("hlo.txt.gz", "trace.json.gz", "xplane.pb.gz", "md", "json")
    }
    s = json.loads((prof / f"{tag}.json").read_text())
    assert (s["source"], s["hlo_module"], s["steps"]) == ("cpu", "jit_step", 1)
    assert s["events"] > 100 and s["matched_events"] == s["events"]
    cats = {c["name"]: c["ms_per_step"] for c in s["categories"]}
    assert s["busy_ms_per_step"] == pytest.approx(sum(cats.values()))
    assert sum(c["pct_of_busy"] for c in s["categories"]) == pytest.approx(100)
    for name in ("front end: STFT + log-mel", "convolution forward", "optimizer update",
                 "BatchNorm / activation / elementwise fusions"):  # fmt: skip
        assert cats.get(name, 0) > 0, (name, cats)
    assert sum(v for k, v in cats.items() if k.startswith("convolution")) > 0.2 * sum(cats.values())
    passes = {row["name"]: row["ms_per_step"] for row in s["passes"]}
    assert passes["forward"] > 0 and passes["backward"] > 0 and passes["optimizer"] > 0
    assert s["top"][0]["ms_per_step"] >= s["top"][-1]["ms_per_step"] > 0
    assert len(s["top"]) == 20
    assert "| **total** |" in (prof / f"{tag}.md").read_text()
    assert r["profile"]["source"] == "cpu" and "variants" not in r
