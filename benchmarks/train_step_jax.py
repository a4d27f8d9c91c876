"""Training throughput of PANNs models through Keras 3 on the JAX backend (no TensorFlow).

KERAS_BACKEND=jax python benchmarks/train_step_jax.py --models=cnn14 --batch_size=32,128 \
    --precisions=float32,bfloat16 --steps=20 [--clip_seconds=10] [--out_json=results.json]

What one training step is: the reference AudioSet recipe (configs/audioset.py),
written directly against JAX with Keras's stateless API, so nothing but Keras and JAX runs:

- 2 x B waveforms of ``clip_seconds`` at the model's sample rate (320000 samples for 10 s at
  32 kHz), 2 x B multi-hot targets (527 classes, each label on with probability 0.01) and
  mixup lambdas (2B,) in the reference layout ``lam[2i] = l, lam[2i + 1] = 1 - l`` with
  ``l ~ Beta(1, 1)``. Synthetic, generated on the device with ``jax.random`` once before the
  timing loop; every step reads the same batch (no host-to-device input traffic is timed).
- forward: ``model.stateless_call(trainable, non_trainable, waveform, training=True,
  mixup_lambda=lam)``; the model mixes the 2B clips down to B in its mixup domain (log-mel for
  CNN14 and MobileNetV1, log-mel and Wavegram for Wavegram-Logmel-CNN14), with SpecAugment
  and dropout on. The targets are mixed the same way (``models.layers.do_mixup``).
- loss: the trainer's own BCE on ``clipwise_output`` (``train/losses.py``: float32, each log
  clamped at -100 as torch's ``F.binary_cross_entropy`` does), mean over clips and classes.
- the trainer's own optimizer, ``train.optimizers.TorchAdam(1e-3, beta_1=0.9,
  beta_2=0.999, epsilon=1e-8, amsgrad=True)`` (torch's epsilon placement), through
  ``optimizer.stateless_apply``; without ``JAX_ENABLE_X64`` its float64 step constants are
  float32 (JAX warns). The H200 figures in BUILD_NOTES.md were measured when this script
  used ``keras.optimizers.Adam``, whose update costs the same per element.
- BatchNorm statistics and the SpecAugment / dropout seed states are non-trainable
  variables, carried from step to step.
- the whole step (value_and_grad + optimizer update) is one ``jax.jit`` function with the
  model, optimizer and non-trainable states donated.

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
import time
import traceback

import jax
import jax.numpy as jnp
import keras
from absl import app, flags
from bench_common import PAPER_FLOPS

NUM_CLASSES = 527
TARGET_RATE = 0.01  # probability of each label in a synthetic multi-hot target
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
def make_step(model, optimizer):
    """The jitted training step ``(trainable, non_trainable, opt_vars, wave, target, lam) ->
    (trainable, non_trainable, opt_vars, loss)``; the first three arguments are donated."""
    from panns_keras.models.layers import do_mixup
    from panns_keras.train.losses import binary_crossentropy_on_probabilities

    def loss_fn(trainable, non_trainable, wave, target, lam):
        out, non_trainable = model.stateless_call(trainable, non_trainable, wave,
                                                  training=True, mixup_lambda=lam)  # fmt: skip
        mixed = do_mixup(target, lam)  # the targets mixed as the model mixes its inputs
        loss = binary_crossentropy_on_probabilities(mixed, out["clipwise_output"])
        return jnp.mean(loss), non_trainable

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def step(trainable, non_trainable, opt_vars, wave, target, lam):
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, wave, target, lam)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return trainable, non_trainable, opt_vars, loss

    return jax.jit(step, donate_argnums=(0, 1, 2))


def make_batch(key, batch: int, samples: int):
    """2B waveforms, 2B multi-hot targets and (2B,) mixup lambdas, made on the device."""

    def generate(key):
        k_wave, k_target, k_lam = jax.random.split(key, 3)
        wave = 0.1 * jax.random.normal(k_wave, (2 * batch, samples), jnp.float32)
        target = jax.random.bernoulli(k_target, TARGET_RATE, (2 * batch, NUM_CLASSES))
        lam = jax.random.beta(k_lam, 1.0, 1.0, (batch,), jnp.float32)
        lam = jnp.stack([lam, 1.0 - lam], axis=1).reshape(-1)  # l0, 1 - l0, l1, 1 - l1, ...
        return wave, target.astype(jnp.float32), lam

    return jax.jit(generate)(key)


@jax.jit
def param_abs_sum(trainable):
    """Sum of |w| over every trainable weight: a fingerprint that moves when weights do."""
    return sum(jnp.sum(jnp.abs(w.astype(jnp.float32))) for w in trainable)


def bench(name: str, precision: str, batch: int, ceiling: float) -> dict:
    import panns_keras
    from panns_keras.train.optimizers import TorchAdam

    keras.utils.set_random_seed(_SEED.value)  # the initial weights too
    keras.config.set_dtype_policy(POLICIES[precision])
    try:
        model = panns_keras.build_model(name, seed=_SEED.value)
    finally:
        keras.config.set_dtype_policy("float32")
    optimizer = TorchAdam(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                          amsgrad=True)  # fmt: skip
    optimizer.build(model.trainable_variables)
    samples = round(_SECONDS.value * model.spec.sample_rate)
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    opt_vars = [v.value for v in optimizer.variables]
    params = int(sum(v.size for v in trainable))  # before the arrays are donated
    batch_args = make_batch(jax.random.key(_SEED.value), batch, samples)
    jax.block_until_ready(batch_args)
    state = (trainable, non_trainable, opt_vars)

    t0 = time.perf_counter()
    lowered = make_step(model, optimizer).lower(*state, *batch_args)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    xla_flops = xla_flops_compiled = mem = None
    with contextlib.suppress(Exception):  # not every JAX version / backend has them
        xla_flops = first_value(lowered.cost_analysis(), "flops")
    with contextlib.suppress(Exception):
        xla_flops_compiled = first_value(compiled.cost_analysis(), "flops")
    with contextlib.suppress(Exception):
        mem = compiled.memory_analysis()

    abs_sum_init = float(param_abs_sum(trainable))
    t0 = time.perf_counter()
    *state, loss = compiled(*state, *batch_args)
    loss_first = float(loss)  # waits for the step
    warmup_s = time.perf_counter() - t0
    abs_sum_warm = float(param_abs_sum(state[0]))

    losses = []
    t0 = time.perf_counter()
    for _ in range(_STEPS.value):
        *state, loss = compiled(*state, *batch_args)
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
    print(f"devices: {jax.devices()}  jax {env['jax']} jaxlib {env['jaxlib']} "
          f"keras {env['keras']} ({env['keras_backend']}) python {env['python']}", flush=True)
    print("data: synthetic, generated on device (one fixed batch of 2B clips, mixup to B); "
          "FLOPs: the paper's per-10-s-clip figures, as FLOPs, as benchmarks/train_step.py "
          "uses them (cnn14 42.22e9), train = 3 x forward; MFU against the bfloat16 matmul "
          "below", flush=True)  # fmt: skip
    ceiling = matmul_tflops(n, jnp.bfloat16)
    ceiling_f32 = matmul_tflops(n, jnp.float32)
    print(f"matmul {n}^3: bfloat16 {ceiling:.1f} TFLOP/s (the MFU ceiling), "
          f"float32 (default precision) {ceiling_f32:.1f} TFLOP/s", flush=True)
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
