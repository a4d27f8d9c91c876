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

Compiles: with ``--cache_dir`` every program goes through JAX's persistent compilation cache
(and XLA's per-fusion autotuning cache) there; ``compile_s`` is then this run's (a read on a
hit), ``cache_hit`` says which, and ``compile_s_uncached`` is the XLA compile time when the
step was compiled (recorded in the cache entry, whole seconds). ``lower_s`` is the tracing +
lowering part of ``compile_s``.

Profile: with ``--profile_dir``, ``--profile_steps`` more steps after the timed ones run
under ``jax.profiler`` and tools/profile_reduce.py reduces the trace to device time per
kind of op (tables in ``<model>_<precision>_b<batch>.md`` / ``.json`` beside the trace and
the compiled HLO). Where the trace has no device-time events (no CUPTI), the forward pass +
loss and the front end are also timed alone (``variants``; ``--time_variants``).

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
REDUCE = Path(__file__).resolve().parents[1] / "tools" / "profile_reduce.py"

_MODELS = flags.DEFINE_list(
    "models",
    ["cnn14", "wavegram_logmel_cnn14", "mobilenet_v1"],
    "Model names (panns_keras.list_models()).",
)
_PREC = flags.DEFINE_list(
    "precisions", ["float32", "bfloat16"], "float32 and/or bfloat16 (Keras mixed_bfloat16)."
)
_BATCH = flags.DEFINE_list("batch_size", ["32"], "Clips per step after mixup; a list runs each.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps (after one warm-up step).")
_SECONDS = flags.DEFINE_float("clip_seconds", 10.0, "Clip length in seconds.")
_OUT = flags.DEFINE_string("out_json", "", "Write all results here (a JSON list).")
_APPEND = flags.DEFINE_bool(
    "append", False, "Keep the results already in --out_json and add this run's after them."
)
_MATMUL = flags.DEFINE_integer(
    "matmul_size", 0, "Square matmul size for the ceiling (0: 8192 on an accelerator, 1024 on CPU)."
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the model and the synthetic batch.")
_CACHE = flags.DEFINE_string(
    "cache_dir",
    "",
    "JAX's persistent compilation cache here (every program, however small; '' = off).",
)
_PROFILE = flags.DEFINE_string(
    "profile_dir",
    "",
    "Profile each configuration after its timing and reduce the trace here (profile_reduce.py).",
)
_PROFILE_STEPS = flags.DEFINE_integer("profile_steps", 4, "Steps in the profile.")
_VARIANTS = flags.DEFINE_enum(
    "time_variants",
    "auto",
    ["auto", "always", "never"],
    "Also time the forward pass + loss alone and the log-mel front "
    "end alone ('auto': when a profile has no device-time "
    "events).",
)

# Persistent-cache events of the compiles so far (jax.monitoring); see compile_record().
_CACHE_EVENTS: dict[str, float] = {}


def _on_event(event: str, *args, **kwargs) -> None:
    if event.startswith("/jax/compilation_cache/"):
        _CACHE_EVENTS[event] = _CACHE_EVENTS.get(event, 0) + 1


def _on_duration(event: str, seconds: float, *args, **kwargs) -> None:
    if event.startswith("/jax/compilation_cache/"):
        _CACHE_EVENTS[event + ":s"] = _CACHE_EVENTS.get(event + ":s", 0.0) + seconds


def enable_cache(path: str) -> None:
    """JAX's persistent compilation cache (and XLA's autotuning cache) in ``path``."""
    for name, value in (
        ("jax_compilation_cache_dir", path),
        ("jax_persistent_cache_min_compile_time_secs", 0),
        ("jax_persistent_cache_min_entry_size_bytes", -1),
    ):
        try:
            jax.config.update(name, value)
        except (AttributeError, KeyError, ValueError) as e:  # a JAX without that option
            print(f"persistent cache: {name}={value!r} not set: {e}", flush=True)
    jax.monitoring.register_event_listener(_on_event)
    jax.monitoring.register_event_duration_secs_listener(_on_duration)


# ---------------------------------------------------------------------------- environment
def device_info() -> dict:
    dev = jax.devices()[0]
    try:
        import jaxlib

        jaxlib_version = jaxlib.__version__
    except (ImportError, AttributeError):
        jaxlib_version = "?"
    return {
        "platform": dev.platform,
        "device_kind": dev.device_kind,
        "device_count": jax.device_count(),
        "jax": jax.__version__,
        "jaxlib": jaxlib_version,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "python": platform.python_version(),
    }


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
    lam = jnp.asarray(
        step_lib.mixup_lambdas(_SEED.value, 0, spec.global_batch, float(config.data.mixup_alpha))
    )
    step_fn = jax_engine.make_step_fn(model, groups, spec)  # the trainer's own step

    t0 = time.perf_counter()
    lowered = step_fn.lower(state, wave, target, lam)
    lower_s = time.perf_counter() - t0
    before = dict(_CACHE_EVENTS)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    cache = compile_record(before, compile_s - lower_s)
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
    extra = {}
    if _PROFILE.value:
        tag = f"{name}_{precision}_b{batch}"
        extra["profile"] = profile(
            compiled, (state, wave, target, lam), tag, 1e3 * seconds / _STEPS.value
        )
        state = extra["profile"].pop("state")
    no_device_time = extra.get("profile", {}).get("source") in (None, "none")
    if _VARIANTS.value == "always" or (
        _VARIANTS.value == "auto" and _PROFILE.value and no_device_time
    ):
        extra["variants"] = time_variants(model, state, wave, target, lam, spec)
    paper = PAPER_FLOPS.get(name, math.nan) * _SECONDS.value / 10.0
    step_flops_tf = 3 * paper * clips_per_s / 1e12
    xla_tf = (xla_flops or math.nan) * _STEPS.value / seconds / 1e12
    return {
        "model": name,
        "precision": precision,
        "policy": POLICIES[precision],
        "batch": batch,
        "clips_in_per_step": 2 * batch,
        "samples": samples,
        "clip_seconds": _SECONDS.value,
        "steps": _STEPS.value,
        "clips_per_s": clips_per_s,
        "step_ms": 1e3 * seconds / _STEPS.value,
        "compile_s": compile_s,
        "lower_s": lower_s,
        **cache,
        "warmup_s": warmup_s,
        "peak_mem_gb": peak_memory_gb(),
        "xla_temp_gb": None if mem is None else mem.temp_size_in_bytes / 1e9,
        "xla_args_gb": None if mem is None else mem.argument_size_in_bytes / 1e9,
        "loss_first": loss_first,
        "loss_last": losses[-1] if losses else loss_first,
        "param_abs_sum": [abs_sum_init, abs_sum_warm, abs_sum_end],
        "paper_flops_per_clip": paper,
        "train_tflops_paper": step_flops_tf,
        "matmul_tflops": ceiling,
        "mfu": step_flops_tf / ceiling,
        "xla_flops_per_step": xla_flops,
        "xla_flops_per_step_compiled": xla_flops_compiled,
        "train_tflops_xla": xla_tf,
        "mfu_xla": xla_tf / ceiling,
        "params": params,
        **extra,
    }


def compile_record(before: dict, xla_s: float) -> dict:
    """How the step's compile went: ``cache_hit`` (None without a persistent cache) and
    ``compile_s_uncached``, the XLA compile time when it was compiled (lowering not
    included): this compile's on a miss, the one the cache recorded on a hit (JAX keeps
    whole seconds)."""
    if not _CACHE.value:
        return {"cache_hit": None, "compile_s_uncached": xla_s}
    delta = {k: v - before.get(k, 0) for k, v in _CACHE_EVENTS.items()}
    hit = delta.get("/jax/compilation_cache/cache_hits", 0) > 0
    first = xla_s
    if hit:  # JAX records the saved time: compile time then - time to read it now
        first = sum(
            delta.get(f"/jax/compilation_cache/{k}_sec:s", 0.0)
            for k in ("compile_time_saved", "cache_retrieval_time")
        )
    return {"cache_hit": hit, "compile_s_uncached": first}


def profile(compiled, args, tag: str, step_ms: float) -> dict:
    """``--profile_steps`` steps under ``jax.profiler``, reduced by tools/profile_reduce.py
    (run as a program) into ``--profile_dir``: ``<tag>.trace.json.gz`` (Chrome trace),
    ``<tag>.xplane.pb.gz``, ``<tag>.hlo.txt.gz`` (the compiled step), ``<tag>.md`` /
    ``<tag>.json`` (the tables). Returns the reduction's headline figures and the state after
    the steps ("state")."""
    import gzip
    import subprocess
    import sys

    from panns_keras.fileio import atomic_write

    out = Path(_PROFILE.value)
    out.mkdir(parents=True, exist_ok=True)
    state, rest = args[0], args[1:]
    summary: dict = {}
    trace = None
    try:
        hlo = compiled.as_text()
        atomic_write(out / f"{tag}.hlo.txt.gz", gzip.compress(hlo.encode()))
        options = jax.profiler.ProfileOptions()
        options.python_tracer_level = 0
        options.enable_hlo_proto = False  # the HLO text is written beside
        with tempfile.TemporaryDirectory() as tmp:
            with jax.profiler.trace(tmp, profiler_options=options):
                for _ in range(_PROFILE_STEPS.value):
                    state, loss = compiled(state, *rest)
                jax.block_until_ready((state, loss))
            run = sorted(Path(tmp).glob("plugins/profile/*"))[-1]
            for f in run.glob("*.xplane.pb"):  # for xprof / TensorBoard, and the fallback
                trace = atomic_write(out / f"{tag}.xplane.pb.gz", gzip.compress(f.read_bytes(), 6))
            for f in run.glob("*.trace.json.gz"):
                trace = atomic_write(out / f"{tag}.trace.json.gz", f.read_bytes())
        if trace is None:
            raise RuntimeError("jax.profiler wrote no trace")
        hlo_path = out / f"{tag}.hlo.txt.gz"
        command = [sys.executable, str(REDUCE), str(trace), str(hlo_path), f"--out={out / tag}"]
        command += [f"--steps={_PROFILE_STEPS.value}", f"--step_ms={step_ms}"]
        if jax.devices()[0].platform != "cpu":
            command.append("--device")  # never count host events
        reduced = subprocess.run(command, capture_output=True, text=True)
        if reduced.returncode:
            raise RuntimeError(reduced.stderr.strip()[-500:])
        print(reduced.stdout, flush=True)
        summary = json.loads((out / f"{tag}.json").read_text())
        summary = {k: summary[k] for k in ("source", "busy_ms_per_step", "categories")}
    except Exception as e:  # the timing stands without its profile
        print(f"profile {tag} FAILED: {type(e).__name__}: {e}", flush=True)
        summary = {"source": None, "error": f"{type(e).__name__}: {e}"[:500]}
    return {**summary, "state": state}


def time_once(fn, *args) -> tuple[float, float]:
    """(compile s, mean ms of ``--steps`` calls after one warm-up) of ``jax.jit(fn)``."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(*args))
    t0 = time.perf_counter()
    outs = [compiled(*args) for _ in range(_STEPS.value)]
    jax.block_until_ready(outs)
    return compile_s, 1e3 * (time.perf_counter() - t0) / _STEPS.value


def time_variants(model, state, wave, target, lam, spec) -> dict:
    """Parts of the step timed alone, for when a profile gives no device times: the
    forward pass + loss (training mode, mixup, no gradient) and the log-mel front end
    (2B clips; log-mel models only)."""
    from panns_keras.train import step as step_lib

    trainable, non_trainable, _ = state

    def forward(trainable, non_trainable, waveform, target, lam):
        def call(x, mix):
            return model.stateless_call(
                trainable, non_trainable, x, training=spec.training, mixup_lambda=mix
            )

        return step_lib.compute_loss(call, waveform, target, lam, spec)[0]

    out = {}
    try:
        c, ms = time_once(forward, trainable, non_trainable, wave, target, lam)
        out.update(forward_loss_ms=ms, forward_loss_compile_s=c)
        if model.logmel_extractor is not None:
            c, ms = time_once(model.logmel, wave)
            out.update(frontend_ms=ms, frontend_compile_s=c)
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"[:500]
    print(
        "timed alone: "
        + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in out.items()),
        flush=True,
    )
    return out


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
    return (
        f"{r['model']:22s} {r['precision']:8s} batch={r['batch']:<4d} "
        f"{r['clips_per_s']:9.1f} clips/s {r['step_ms']:9.1f} ms/step "
        f"compile {r['compile_s']:5.1f} s warm-up {r['warmup_s']:5.1f} s "
        f"peak {r['peak_mem_gb']:.2f} GB{mem} "
        f"MFU {100 * r['mfu']:.1f}% (paper FLOPs) {100 * r['mfu_xla']:.1f}% (XLA FLOPs, "
        f"{xla} TFLOP/step) loss {r['loss_first']:.4f}->{r['loss_last']:.4f}"
    )


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
    if _CACHE.value:
        enable_cache(_CACHE.value)
    env = device_info()
    accel = env["platform"] != "cpu"
    n = _MATMUL.value or (8192 if accel else 1024)
    print(
        f"devices: {jax.devices()}  jax {env['jax']} jaxlib {env['jaxlib']} "
        f"keras {env['keras']} ({env['keras_backend']}) python {env['python']}",
        flush=True,
    )
    print(
        "data: synthetic, generated on device (one fixed batch of 2B clips, mixup to B); "
        "FLOPs: the paper's per-10-s-clip figures, as FLOPs, as benchmarks/train_step.py "
        "uses them (cnn14 42.22e9), train = 3 x forward; MFU against the bfloat16 matmul "
        "below",
        flush=True,
    )
    ceiling = matmul_tflops(n, jnp.bfloat16)
    ceiling_f32 = matmul_tflops(n, jnp.float32)
    print(
        f"matmul {n}^3: bfloat16 {ceiling:.1f} TFLOP/s (the MFU ceiling), "
        f"float32 (default precision) {ceiling_f32:.1f} TFLOP/s",
        flush=True,
    )
    env.update(
        matmul_size=n,
        matmul_f32_tflops=ceiling_f32,
        data="synthetic, generated on device",
        flops_convention="PANNs paper figures per 10 s clip (cnn14 42.22e9) used as "
        "FLOPs as in benchmarks/train_step.py, x clip_seconds / 10; "
        "train step = 3 x forward; mfu against matmul_tflops "
        "(bfloat16) for both precisions",
    )
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
                    print(
                        f"{name:22s} {precision:8s} batch={batch:<4d} FAILED: "
                        f"{type(e).__name__}: {msg}",
                        flush=True,
                    )
                    r = {
                        "model": name,
                        "precision": precision,
                        "batch": batch,
                        "error": f"{type(e).__name__}: {msg}",
                        "traceback": traceback.format_exc()[-4000:],
                        "peak_mem_gb": peak_memory_gb(),
                        "matmul_tflops": ceiling,
                    }
                results.append({**r, **env})
                if _OUT.value:
                    write_json(_OUT.value, results)
                gc.collect()
                keras.backend.clear_session()
                jax.clear_caches()


if __name__ == "__main__":
    app.run(main)
