"""Training-step speed of the trainer's own step, per backend, beside the reference's.

python benchmarks/train_step.py --models=cnn14,cnn6,mobilenet_v1 --batch_size=8 --steps=3
  [--backends=tensorflow,jax] [--precisions=float32] [--xla=off] [--rounds=2]
  [--reference_python=PY] [--reference_models=DIR]

Each configuration runs in a child process (``--child``) on the Keras backend it names and
times the step ``panns-keras train`` runs: the packaged ``audioset:<model>`` recipe (Adam with
amsgrad in torch's form, BCE on probabilities, SpecAugment, dropout, log-mel mixup of 2 x
batch clips down to batch) through the trainer's backend layer
(:func:`panns_keras.train.trainer.make_engine`) with ``config.data.source=synthetic`` (one
random 10 s batch made on the device). ``--reference_python`` runs the PyTorch reference's own
``Cnn14`` (the ``panns_inference`` package: the reference's released model code) through the
reference recipe's step (``pytorch/main.py``: model(x, mixup_lambda), BCE, Adam amsgrad) in an
interpreter that has torch, on the same shapes. ``--reference_models=DIR`` takes the other
models' classes from ``DIR/models.py`` (the reference repository's ``pytorch/`` folder, i.e. a
checkout of qiuqiangkong/audioset_tagging_cnn, whose ``models.py`` defines every system; it
is imported with ``DIR`` first on ``sys.path``); without it only the models ``panns_inference``
ships (Cnn14) get a reference child. Rounds alternate the children (reference,
tensorflow, jax, reference, ...), so a machine that slows down slows all of them; each line
is the median over rounds of the per-step medians, and ratios are only taken within this run.

Also printed: the matmul ceiling of this run (the fastest of NumPy, TensorFlow and XLA on a
4096 x 4096 float32 matmul) and each configuration's share of it (3 x the paper's forward
FLOPs per clip x clips/s), and the CPU's bfloat16 / AVX-512 / VNNI flags.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from absl import app, flags
from bench_common import cpu_description

_MODELS = flags.DEFINE_list("models", ["cnn14", "cnn6", "mobilenet_v1"], "Models.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Clips per step after mixup (2x are fed).")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps per round (after one warm-up step).")
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Rounds, alternating the children.")
_BACKENDS = flags.DEFINE_list("backends", ["tensorflow", "jax"], "Keras backends.")
_PREC = flags.DEFINE_list("precisions", ["float32"], "Precision policies.")
_XLA = flags.DEFINE_list("xla", ["off"], "train.jit_compile (TensorFlow) settings.")
_REF = flags.DEFINE_string("reference_python", "", "Interpreter with torch + panns_inference.")
_REF_MODELS = flags.DEFINE_string(
    "reference_models",
    "",
    "Folder with the reference's models.py (audioset_tagging_cnn/"
    "pytorch): reference children for every model it defines, not only panns_inference's.",
)
_CHILD = flags.DEFINE_string("child", "", "Internal: tensorflow | jax | reference.")
_MODEL = flags.DEFINE_string("model", "cnn14", "Internal: the child's model.")
_PRECISION = flags.DEFINE_string("precision", "float32", "Internal: the child's precision.")
_JIT = flags.DEFINE_bool("jit", False, "Internal: the child's train.jit_compile.")
_THREADS = flags.DEFINE_integer("threads", 0, "Threads per child (0 = all cores).")

REFERENCE_CLASSES = {"cnn14": "Cnn14"}  # what panns_inference ships
# The reference repository's class of each model name (with --reference_models).
REFERENCE_REPO_CLASSES = {
    "cnn14": "Cnn14",
    "cnn6": "Cnn6",
    "cnn10": "Cnn10",
    "mobilenet_v1": "MobileNetV1",
    "mobilenet_v2": "MobileNetV2",
    "resnet22": "ResNet22",
    "resnet38": "ResNet38",
}


def matmul_gflops(fn, n=4096, reps=3) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


# ---------------------------------------------------------------------------- children
def child_keras(backend: str) -> dict:
    import keras

    from panns_keras import configs
    from panns_keras.train import step as step_lib
    from panns_keras.train import trainer

    a = np.random.default_rng(0).standard_normal((4096, 4096)).astype(np.float32)
    if backend == "jax":
        import jax

        mm = jax.jit(lambda x: x @ x)
        ceiling = matmul_gflops(lambda: mm(a).block_until_ready())
    else:
        import tensorflow as tf

        ta = tf.constant(a)
        mm = tf.function(lambda x: tf.linalg.matmul(x, x))
        ceiling = matmul_gflops(lambda: mm(ta).numpy())
    c = configs.get_config(f"audioset:{_MODEL.value}")
    c.train.batch_size = _BATCH.value
    c.train.precision = _PRECISION.value
    c.train.jit_compile = _JIT.value
    c.train.strategy = "default"
    c.data.source = "synthetic"
    c.data.train_files = ""
    keras.mixed_precision.set_global_policy(_PRECISION.value)
    with tempfile.TemporaryDirectory() as tmp:
        engine = trainer.make_engine(c, Path(tmp))
        keras.utils.set_random_seed(0)
        engine.build(lambda: trainer.build_for_training(c))
        engine.start(None, synthetic=True)
        times = []
        for i in range(_STEPS.value + 1):
            lam = step_lib.mixup_lambdas(0, i, engine.spec.global_batch, 1.0)
            t0 = time.perf_counter()
            loss, _ = engine.train_step(lam)
            loss = float(np.asarray(loss))
            times.append(time.perf_counter() - t0)
    return {
        "compile_s": times[0],
        "step_s": float(np.median(times[1:])),
        "loss": loss,
        "matmul_gflops": ceiling,
        "peak_mb": _peak_mb(),
    }


def child_reference() -> dict:
    import torch

    cls = reference_classes()[_MODEL.value]
    models = None
    if _REF_MODELS.value:
        sys.path.insert(0, _REF_MODELS.value)
        import models  # the reference repository's pytorch/models.py
    if not hasattr(models, cls):  # a folder without it: the released package's class
        from panns_inference import models
    if _THREADS.value:
        torch.set_num_threads(_THREADS.value)
    torch.manual_seed(0)
    net = getattr(models, cls)(
        sample_rate=32000,
        window_size=1024,
        hop_size=320,
        mel_bins=64,
        fmin=50,
        fmax=14000,
        classes_num=527,
    )
    net.train()
    opt = torch.optim.Adam(
        net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=True
    )
    n = 2 * _BATCH.value
    g = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(n, 320000, generator=g)
    y = (torch.rand(n, 527, generator=g) < 0.02).float()
    times = []
    for i in range(_STEPS.value + 1):
        lam = torch.from_numpy(_lambdas(i, _BATCH.value))
        t0 = time.perf_counter()
        out = net(x, lam)
        target = y[0::2] * lam[0::2, None] + y[1::2] * lam[1::2, None]  # the reference mixup
        loss = torch.nn.functional.binary_cross_entropy(out["clipwise_output"], target)
        loss.backward()
        opt.step()
        opt.zero_grad()
        loss = float(loss)
        times.append(time.perf_counter() - t0)
    return {
        "compile_s": times[0],
        "step_s": float(np.median(times[1:])),
        "loss": loss,
        "matmul_gflops": float("nan"),
        "peak_mb": _peak_mb(),
        "torch": torch.__version__,
    }


def reference_classes() -> dict[str, str]:
    return REFERENCE_REPO_CLASSES if _REF_MODELS.value else REFERENCE_CLASSES


def _lambdas(step: int, pairs: int) -> np.ndarray:
    lam = np.random.default_rng([7, step]).beta(1.0, 1.0, pairs).astype(np.float32)
    return np.stack([lam, 1 - lam], 1).reshape(-1)


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------------------- parent
def run_child(kind: str, model: str, precision: str, jit: bool) -> dict | None:
    args = [
        f"--child={kind}",
        f"--model={model}",
        f"--precision={precision}",
        f"--jit={str(jit).lower()}",
        f"--batch_size={_BATCH.value}",
        f"--steps={_STEPS.value}",
        f"--threads={_THREADS.value}",
        f"--reference_models={_REF_MODELS.value}",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    python = sys.executable
    if kind == "reference":
        python = _REF.value
    else:
        env["KERAS_BACKEND"] = kind
    if _THREADS.value:
        env["OMP_NUM_THREADS"] = str(_THREADS.value)
    p = subprocess.run([python, __file__, *args], env=env, capture_output=True, text=True)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not lines:
        tail = (p.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  {kind} {model} {precision}: FAILED ({tail[:160]})", flush=True)
        return None
    return json.loads(lines[-1][len("RESULT ") :])


def main(argv) -> None:
    del argv
    if _CHILD.value:
        res = child_reference() if _CHILD.value == "reference" else child_keras(_CHILD.value)
        print("RESULT " + json.dumps(res), flush=True)
        return
    if _REF.value and not Path(_REF.value).exists():
        print(f"train_step.py: error: --reference_python {_REF.value}: not found", file=sys.stderr)
        sys.exit(2)
    if _REF_MODELS.value and not (Path(_REF_MODELS.value) / "models.py").is_file():
        print(
            f"train_step.py: error: --reference_models {_REF_MODELS.value}: no models.py there",
            file=sys.stderr,
        )
        sys.exit(2)
    # Imported here, not at the top: the reference child runs this file in an interpreter
    # that has torch and may lack panns_keras.
    from panns_keras.models.registry import PAPER_FLOPS

    print(f"CPU: {cpu_description()}")
    a = np.random.default_rng(0).standard_normal((4096, 4096)).astype(np.float32)
    numpy_mm = matmul_gflops(lambda: a @ a)
    print(
        f"batch {_BATCH.value} (mixed from {2 * _BATCH.value} clips of 10 s), "
        f"{_STEPS.value} timed steps x {_ROUNDS.value} rounds; numpy matmul "
        f"{numpy_mm:.0f} GFLOP/s",
        flush=True,
    )
    for model in _MODELS.value:
        confs = []
        if _REF.value and model in reference_classes():
            confs.append(("reference", "float32", False))
        for backend in _BACKENDS.value:
            for prec in _PREC.value:
                for x in _XLA.value if backend == "tensorflow" else ["off"]:
                    confs.append((backend, prec, x == "on"))
        runs: dict[tuple, list] = {c: [] for c in confs}
        for _ in range(_ROUNDS.value):
            for c in confs:
                r = run_child(c[0], model, c[1], c[2])
                if r is not None:
                    runs[c].append(r)
        ceiling = max(
            [numpy_mm]
            + [
                r["matmul_gflops"]
                for rs in runs.values()
                for r in rs
                if np.isfinite(r["matmul_gflops"])
            ]
        )
        ref = runs.get(("reference", "float32", False)) or []
        ref_s = float(np.median([r["step_s"] for r in ref])) if ref else None
        print(f"{model}: matmul ceiling of this run {ceiling:.0f} GFLOP/s")
        for c, rs in runs.items():
            if not rs:
                continue
            s = float(np.median([r["step_s"] for r in rs]))
            cps = _BATCH.value / s
            gf = 3 * PAPER_FLOPS.get(model, float("nan")) * cps / 1e9
            name = c[0] + (" xla" if c[2] else "")
            vs = f"  {ref_s / s:.2f}x the reference" if ref_s and c[0] != "reference" else ""
            rounds = ", ".join(f"{r['step_s']:.2f}" for r in rs)
            print(
                f"  {name:14s} {c[1]:15s} {s:7.2f} s/step  {cps:6.2f} clips/s  "
                f"{100 * gf / ceiling:5.1f}% of the ceiling  compile {rs[0]['compile_s']:.1f} s"
                f"  peak {max(r['peak_mb'] for r in rs):.0f} MB  rounds {rounds}{vs}",
                flush=True,
            )


if __name__ == "__main__":
    app.run(main)
