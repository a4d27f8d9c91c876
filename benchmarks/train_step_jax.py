"""Training throughput of PANNs models through Keras 3 on the JAX backend (no TensorFlow).

KERAS_BACKEND=jax python benchmarks/train_step_jax.py --models=cnn14 --batch_size=32,128 \
    --precisions=float32,bfloat16 --steps=20 [--clip_seconds=10] [--out_json=results.json]

What one training step is: the trainer's own step (``panns_keras.train.step`` through
``train/backends/jax_engine.make_step_fn``, the step ``KERAS_BACKEND=jax panns-keras train``
runs), built by the trainer from the packaged ``audioset:<model>`` recipe (its optimizer,
schedule, loss, SpecAugment, dropout and mixup), with ``config.data.source=synthetic``:
- 2 x B waveforms of ``clip_seconds`` at the model's sample rate and 2 x B multi-hot targets,
  made on the device once (``jax_engine.synthetic_batches``); every step reads the same batch
  (no host-to-device input traffic is timed); the mixup lambdas of step 0
  (``step.mixup_lambdas``).
- the step is ``jax.jit`` of value_and_grad through ``model.stateless_call`` (the model mixes
  2B clips down to B in its mixup domain) and each optimizer group's ``stateless_apply``.

B (``--batch_size``) counts clips per step AFTER mixup: clips/s = B x steps / seconds.
``bfloat16`` is Keras's ``mixed_bfloat16`` policy (bfloat16 compute, float32 variables), set
before the model is built; ``float32`` is Keras's float32 policy with XLA's default matmul /
convolution precision for the device.

Timing: the step is traced, lowered and compiled ahead of time (``compile_s``), run once as
a warm-up (``warmup_s``), then ``--steps`` steps are timed, ending with
``block_until_ready``. ``step_ms`` is the mean of the timed steps.

FLOPs: ``paper_flops_per_clip`` is the PANNs paper's figure per 10 s clip (the column the
paper heads "multi-adds"), used as FLOPs exactly as benchmarks/train_step.py and
benchmarks/inference.py do, so figures are comparable with theirs, scaled by
clip_seconds / 10. Counted by hand, Cnn14 does about 21.1 G multiply-adds per 10 s clip
(20.0 G in its convolutions, 1.05 G in the STFT), so 42.22e9 is 2 FLOPs per multiply-add:
the convention is FLOPs, not multiply-adds. A training step is counted as 3 x forward.
``mfu`` = 3 x paper FLOPs per clip x clips/s / ``matmul_tflops``, where ``matmul_tflops``
is a square bfloat16 ``jnp.dot`` (8192 on an accelerator, 1024 on CPU; 2 n^3 FLOPs) timed in
the same run on the same device (median of 5): a fraction of the same-run matmul ceiling,
never of a datasheet figure, for both precisions. ``xla_flops_per_step`` is XLA's own count
for the whole step (``Lowered.cost_analysis()``; 2 FLOPs per multiply-add, the front end of
all 2B clips and the optimizer included; it skips the zero-padding taps of "same"
convolutions, so Cnn14's forward is 37.5e9 per 10 s clip by XLA's count against the paper's
42.22e9) and ``mfu_xla`` the same ratio from it.

Memory: ``peak_mem_gb`` is the device allocator's ``peak_bytes_in_use`` (the process's peak
RSS on CPU); both are peaks over the whole process so far, so they only grow from one
configuration to the next. ``xla_temp_gb`` / ``xla_args_gb`` are the compiled step's own
temporary and argument buffers (``Compiled.memory_analysis()``), per configuration.

A configuration that fails (e.g. out of device memory) prints one line and the run goes on.
With ``--out_json`` all results so far are rewritten atomically after every configuration.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import contextlib
import gc
import json
import math
import platform
import resource
import statistics
import tempfile
import time
import traceback
from pathlib import Path

import jax
import jax.numpy as jnp
import keras
from absl import app, flags

from panns_keras.models.registry import PAPER_FLOPS

POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}

_MODELS = flags.DEFINE_list("models", ["cnn14", "wavegram_logmel_cnn14", "mobilenet_v1"],
                            "Model names (panns_keras.list_models()).")  # fmt: skip
_PREC = flags.DEFINE_list("precisions", ["float32", "bfloat16"],
                          "float32 and/or bfloat16 (Keras mixed_bfloat16).")  # fmt: skip
_BATCH = flags.DEFINE_list("batch_size", ["32"], "Clips per step after mixup; a list runs each.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps (after one warm-up step).")
_SECONDS = flags.DEFINE_float("clip_seconds", 10.0, "Clip length in seconds.")
_OUT = flags.DEFINE_string("out_json", "", "Write all results here (a JSON list).")
_APPEND = flags.DEFINE_bool("append", False, "Keep the results already in --out_json and "
                            "add this run's after them.")  # fmt: skip
_MATMUL = flags.DEFINE_integer("matmul_size", 0, "Square matmul size for the ceiling "
                               "(0: 8192 on an accelerator, 1024 on CPU).")  # fmt: skip
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the model and the synthetic batch.")


# ---------------------------------------------------------------------------- environment
def device_info() -> dict:
    dev = jax.devices()[0]
    try:
        import jaxlib

        jaxlib_version = jaxlib.__version__
    except (ImportError, AttributeError):
        jaxlib_version = "?"
    return {"platform": dev.platform, "device_kind": dev.device_kind,
            "device_count": jax.device_count(), "jax": jax.__version__,
            "jaxlib": jaxlib_version, "keras": keras.__version__,
            "keras_backend": keras.backend.backend(),
            "python": platform.python_version()}  # fmt: skip


def peak_memory_gb() -> float:
    """Allocator peak of device 0, or the process's peak RSS where there is none (CPU)."""
    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # some backends do not implement it
        stats = {}
    if "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def matmul_tflops(n: int, dtype) -> float:
    """TFLOP/s of an n x n x n ``jnp.dot`` on device 0: median of 5 timings of 4 products."""
    ka, kb = jax.random.split(jax.random.key(1))
    a = jax.random.normal(ka, (n, n), dtype)
    b = jax.random.normal(kb, (n, n), dtype)
    dot = jax.jit(jnp.dot)
    dot(a, b).block_until_ready()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(4):
            r = dot(a, b)
        r.block_until_ready()
        times.append((time.perf_counter() - t0) / 4)
    return 2 * n**3 / statistics.median(times) / 1e12


def first_value(analysis, key: str) -> float | None:
    """``key`` from a JAX cost / memory analysis (a dict, or a list of dicts in older JAX)."""
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else None
    if isinstance(analysis, dict):
        value = analysis.get(key)
        return None if value is None else float(value)
    return None


# ---------------------------------------------------------------------------- the step
@jax.jit
def param_abs_sum(trainable):
    """Sum of |w| over every trainable weight: a fingerprint that moves when weights do."""
    return sum(jnp.sum(jnp.abs(w.astype(jnp.float32))) for w in trainable)


def recipe(name: str, precision: str, batch: int):
    """The packaged ``audioset:<name>`` recipe on the synthetic source at this batch."""
    from panns_keras import configs

    c = configs.get_config(f"audioset:{name}")
    c.seed = _SEED.value
    c.train.batch_size = batch
    c.train.precision = POLICIES[precision]
    c.train.strategy = "default"
    c.data.source = "synthetic"
    c.data.train_files = ""
    c.data.clip_samples = round(_SECONDS.value * int(c.data.sample_rate))
    return c


def bench(name: str, precision: str, batch: int, ceiling: float) -> dict:
    from panns_keras.train import step as step_lib
    from panns_keras.train import trainer
    from panns_keras.train.backends import jax_engine

    config = recipe(name, precision, batch)
    keras.config.set_dtype_policy(config.train.precision)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            engine = trainer.make_engine(config, Path(tmp))
            keras.utils.set_random_seed(_SEED.value)
            engine.build(lambda: trainer.build_for_training(config))
    finally:
        keras.config.set_dtype_policy("float32")
    model, groups, spec = engine.model, engine.groups, engine.spec
    samples = int(config.data.clip_samples)
    state = jax_engine.initial_state(model, groups)
    params = int(sum(v.size for v in state[0]))
    batch_args = next(jax_engine.synthetic_batches(config, spec))
    wave, target = batch_args["waveform"], batch_args["target"]
    lam = jnp.asarray(step_lib.mixup_lambdas(_SEED.value, 0, spec.global_batch,
                                             float(config.data.mixup_alpha)))  # fmt: skip
    step_fn = jax_engine.make_step_fn(model, groups, spec)  # the trainer's own step

    t0 = time.perf_counter()
    lowered = step_fn.lower(state, wave, target, lam)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    xla_flops = xla_flops_compiled = mem = None
    with contextlib.suppress(Exception):  # not every JAX version / backend has them
        xla_flops = first_value(lowered.cost_analysis(), "flops")
    with contextlib.suppress(Exception):
        xla_flops_compiled = first_value(compiled.cost_analysis(), "flops")
    with contextlib.suppress(Exception):
        mem = compiled.memory_analysis()

    abs_sum_init = float(param_abs_sum(state[0]))
    t0 = time.perf_counter()
    state, loss = compiled(state, wave, target, lam)
    loss_first = float(loss)  # waits for the step
    warmup_s = time.perf_counter() - t0
    abs_sum_warm = float(param_abs_sum(state[0]))

    losses = []
    t0 = time.perf_counter()
    for _ in range(_STEPS.value):
        state, loss = compiled(state, wave, target, lam)
        losses.append(loss)
    jax.block_until_ready((state, losses))
    seconds = time.perf_counter() - t0
    losses = [float(x) for x in losses]
    abs_sum_end = float(param_abs_sum(state[0]))

    clips_per_s = batch * _STEPS.value / seconds
    paper = PAPER_FLOPS.get(name, math.nan) * _SECONDS.value / 10.0
    step_flops_tf = 3 * paper * clips_per_s / 1e12
    xla_tf = (xla_flops or math.nan) * _STEPS.value / seconds / 1e12
    return {
        "model": name, "precision": precision, "policy": POLICIES[precision], "batch": batch,
        "clips_in_per_step": 2 * batch, "samples": samples, "clip_seconds": _SECONDS.value,
        "steps": _STEPS.value, "clips_per_s": clips_per_s,
        "step_ms": 1e3 * seconds / _STEPS.value, "compile_s": compile_s, "warmup_s": warmup_s,
        "peak_mem_gb": peak_memory_gb(),
        "xla_temp_gb": None if mem is None else mem.temp_size_in_bytes / 1e9,
        "xla_args_gb": None if mem is None else mem.argument_size_in_bytes / 1e9,
        "loss_first": loss_first, "loss_last": losses[-1] if losses else loss_first,
        "param_abs_sum": [abs_sum_init, abs_sum_warm, abs_sum_end],
        "paper_flops_per_clip": paper, "train_tflops_paper": step_flops_tf,
        "matmul_tflops": ceiling, "mfu": step_flops_tf / ceiling,
        "xla_flops_per_step": xla_flops, "xla_flops_per_step_compiled": xla_flops_compiled,
        "train_tflops_xla": xla_tf, "mfu_xla": xla_tf / ceiling,
        "params": params,
    }  # fmt: skip


# ---------------------------------------------------------------------------- output
def finite(x):
    """``x`` with every NaN / infinity replaced by None (strict JSON)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def write_json(path: str, results: list) -> None:
    """Replace ``path`` with ``results`` in one step (a temp file in the same folder)."""
    from panns_keras.fileio import atomic_write

    atomic_write(path, json.dumps(finite(results), indent=1, allow_nan=False))


def fmt(r: dict) -> str:
    mem = "" if r["xla_temp_gb"] is None else f" (xla temp {r['xla_temp_gb']:.2f} GB)"
    xla = "n/a" if r["xla_flops_per_step"] is None else f"{r['xla_flops_per_step'] / 1e12:.2f}"
    return (f"{r['model']:22s} {r['precision']:8s} batch={r['batch']:<4d} "
            f"{r['clips_per_s']:9.1f} clips/s {r['step_ms']:9.1f} ms/step "
            f"compile {r['compile_s']:5.1f} s warm-up {r['warmup_s']:5.1f} s "
            f"peak {r['peak_mem_gb']:.2f} GB{mem} "
            f"MFU {100 * r['mfu']:.1f}% (paper FLOPs) {100 * r['mfu_xla']:.1f}% (XLA FLOPs, "
            f"{xla} TFLOP/step) loss {r['loss_first']:.4f}->{r['loss_last']:.4f}")  # fmt: skip


def main(argv) -> None:
    del argv
    import panns_keras

    for name in _MODELS.value:
        if name not in panns_keras.list_models():
            raise app.UsageError(f"unknown model {name!r}; see panns_keras.list_models()")
    for p in _PREC.value:
        if p not in POLICIES:
            raise app.UsageError(f"precision {p!r}: one of {', '.join(POLICIES)}")
    batches = [int(b) for b in _BATCH.value]
    env = device_info()
    accel = env["platform"] != "cpu"
    n = _MATMUL.value or (8192 if accel else 1024)
    print(
        f"devices: {jax.devices()}  jax {env['jax']} jaxlib {env['jaxlib']} "
        f"keras {env['keras']} ({env['keras_backend']}) python {env['python']}",
        flush=True,
    )
    print("data: synthetic, generated on device (one fixed batch of 2B clips, mixup to B); "
          "FLOPs: the paper's per-10-s-clip figures, as FLOPs, as benchmarks/train_step.py "
          "uses them (cnn14 42.22e9), train = 3 x forward; MFU against the bfloat16 matmul "
          "below", flush=True)  # fmt: skip
    ceiling = matmul_tflops(n, jnp.bfloat16)
    ceiling_f32 = matmul_tflops(n, jnp.float32)
    print(
        f"matmul {n}^3: bfloat16 {ceiling:.1f} TFLOP/s (the MFU ceiling), "
        f"float32 (default precision) {ceiling_f32:.1f} TFLOP/s",
        flush=True,
    )
    env.update(matmul_size=n, matmul_f32_tflops=ceiling_f32,
               data="synthetic, generated on device",
               flops_convention="PANNs paper figures per 10 s clip (cnn14 42.22e9) used as "
                                "FLOPs as in benchmarks/train_step.py, x clip_seconds / 10; "
                                "train step = 3 x forward; mfu against matmul_tflops "
                                "(bfloat16) for both precisions")  # fmt: skip
    results: list[dict] = []
    if _APPEND.value and _OUT.value and os.path.exists(_OUT.value):
        with open(_OUT.value) as f:
            results = list(json.load(f))
    for name in _MODELS.value:
        for precision in _PREC.value:
            for batch in batches:
                try:
                    r = bench(name, precision, batch, ceiling)
                    print(fmt(r), flush=True)
                except Exception as e:
                    msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
                    print(f"{name:22s} {precision:8s} batch={batch:<4d} FAILED: "
                          f"{type(e).__name__}: {msg}", flush=True)  # fmt: skip
                    r = {"model": name, "precision": precision, "batch": batch,
                         "error": f"{type(e).__name__}: {msg}",
                         "traceback": traceback.format_exc()[-4000:],
                         "peak_mem_gb": peak_memory_gb(), "matmul_tflops": ceiling}  # fmt: skip
                results.append({**r, **env})
                if _OUT.value:
                    write_json(_OUT.value, results)
                gc.collect()
                keras.backend.clear_session()
                jax.clear_caches()


if __name__ == "__main__":
    app.run(main)
