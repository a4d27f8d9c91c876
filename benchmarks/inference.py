"""Per-clip latency / real-time factor of Keras (eager, XLA), SavedModel, ONNX and TFLite.

    .venv/bin/python benchmarks/inference.py [--models cnn6,mobilenet_v1,cnn14]
        [--variants float32,float16,dynamic_int8,int8] [--repeats 3] [--clip_seconds 10]
        [--weights random|golden|MODEL_DIR] [--clips AUDIO_DIR] [--reference_python PY]

Every backend is timed at 1 thread and at all cores. TensorFlow fixes its thread pools at
start-up, so the 1-thread Keras / SavedModel rows come from a child run of this script
(``--tf_threads 1 --tf_only``); onnxruntime (when the ``onnx`` extra is installed) and
TFLite take a thread count per session. Weights: random (seeded), the golden-rule weights
(--weights=golden) or a trained model directory (--weights=demo_out/model). Each exported
variant's agreement with Keras float32 (max / mean |score diff|, top-5 overlap) is measured
on real clips (--clips, default tests/assets/audio; e.g. demo_data/fsdd/recordings for the
demo's digit model). GFLOP/s uses the PANNs paper's multiply-adds x 2
per 10 s clip, and every row gives it as a percentage of a 4096 x 4096 float32
tf.linalg.matmul measured in the same run (the 1-thread TensorFlow rows: in the same child
run, at 1 thread).

The reference, side by side: with ``--reference_python=PY`` (an interpreter that has
``torch`` and the reference's ``panns_inference`` package, which holds Cnn14 and
Cnn14_DecisionLevelMax), ``benchmarks/reference_child.py`` runs the reference model in that
interpreter in this same run: it writes the reference's seeded initial weights as a
``.pth``, which this script converts with panns_keras (so both sides hold the same
weights), scores the agreement clips, and times one clip at 1 thread and at all cores.
Every row of that model then also gives the reference's time at the same thread count
divided by the row's time ("x ref"), and Keras's agreement with the reference is printed.
A model the reference package lacks (Cnn6, MobileNetV1) gets the matmul-ceiling fraction
only. Speed is never given as a ratio to a time measured elsewhere.

Memory: each ONNX / TFLite conversion runs in a child process of this script
(``--convert_to``) that loads the parent's weights, writes the converted model to a
temporary folder and exits; the parent only loads and times the files. A TFLite conversion
holds several GB for a while (Cnn14: ~3.5 GB), and a child gives it all back to the system
when it exits. Each model is freed before the next is built. The last line reports the peak
RSS of this process and of the largest child.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf
from absl import app, flags
from bench_common import golden_weights

import panns_keras
from panns_keras.artifact import CLIPWISE
from panns_keras.export import common
from panns_keras.export import tflite as T
from panns_keras.export.representative import representative_windows
from panns_keras.export.savedmodel import serving_function
from panns_keras.models.registry import PAPER_FLOPS

# Paper FLOPs per 10 s clip (Kong et al. 2020, Table: "Multi-adds"), as given in the brief.
AUDIO = Path(__file__).resolve().parents[1] / "tests" / "assets" / "audio"

_MODELS = flags.DEFINE_list("models", "cnn6,mobilenet_v1,cnn14", "Models to time.")
_VARIANTS = flags.DEFINE_list("variants", "float32,float16,dynamic_int8,int8", "TFLite variants.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs per configuration (median).")
_CLIP = flags.DEFINE_float("clip_seconds", 10.0, "Clip length.")
_WEIGHTS = flags.DEFINE_string(
    "weights",
    "random",
    "'random' (seeded), 'golden' (the golden-rule weights of tests/assets/golden), or a model "
    "directory (e.g. a trained one: demo_out/model; --models is then its model).",
)
_CLIPS = flags.DEFINE_string("clips", str(AUDIO), "Audio folder for the agreement windows.")
_TF_THREADS = flags.DEFINE_integer("tf_threads", 0, "TensorFlow intra-op threads (0: all).")
_TF_ONLY = flags.DEFINE_bool("tf_only", False, "Only the Keras / SavedModel rows.")
_CONVERT_TO = flags.DEFINE_string(
    "convert_to", None, "Internal: convert --models to onnx or tflite_<variant> in --work_dir."
)
_WORK_DIR = flags.DEFINE_string("work_dir", None, "Internal: folder shared with the parent.")
_REFERENCE_PYTHON = flags.DEFINE_string(
    "reference_python",
    None,
    "Python interpreter with torch and panns_inference: times the PyTorch reference in this "
    "same run (Cnn14 and Cnn14-DecisionLevelMax) and gives every row's speed-up over it.",
)
_REFERENCE_SECONDS = flags.DEFINE_float(
    "reference_seconds", None, "Internal: the reference's 1-thread time, for the child's rows."
)
REFERENCE_CLASSES = ("Cnn14", "Cnn14_DecisionLevelMax")  # what panns_inference provides
WEIGHTS = "model.weights.h5"
CLIPS = "clips.npy"


def peak_rss_gb(who=resource.RUSAGE_SELF):
    """Peak RSS in GB. For this process: VmHWM of /proc/self/status when there is one.
    ``ru_maxrss`` of a child started by ``subprocess`` (vfork + exec) starts at the
    *parent's* high-water mark, so a conversion child would report the parent's peak;
    VmHWM belongs to the process's own address space, which exec replaces."""
    if who == resource.RUSAGE_SELF:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 2**20  # kB
        except OSError:
            pass
    return resource.getrusage(who).ru_maxrss / 2**20  # KiB on Linux


def timeit(fn, repeats):
    fn()  # warm-up / compile
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def matmul_gflops(repeats=5):
    a = tf.random.normal((4096, 4096))
    b = tf.random.normal((4096, 4096))
    sec = timeit(lambda: tf.linalg.matmul(a, b).numpy(), repeats)
    return 2 * 4096**3 / sec / 1e9


def make_model(name):
    """The model to time, per --weights."""
    w = _WEIGHTS.value
    if w == "random":
        return panns_keras.build_model(name, seed=0)
    if w == "golden":
        from panns_keras.convert.mapping import assign_state_dict
        from panns_keras.models.registry import MODEL_SPECS, canonical_name

        model = panns_keras.build_model(name)
        assign_state_dict(model, golden_weights(MODEL_SPECS[canonical_name(name)].reference_name))
        return model
    return panns_keras.load_model(w)


CEILING = {"gflops": float("nan")}  # the same run's matmul GFLOP/s (set in main)
REFERENCE = {}  # threads -> the reference's seconds per clip, measured in this run


def row(name, backend, sec, clip_s, flops, threads=None):
    """One timing line: latency, real-time factor, GFLOP/s and that as a fraction of the
    matmul ceiling measured in this same run, and, when the reference ran in this run, its
    time at the same thread count over this row's (never a time from another run)."""
    gf = flops * clip_s / 10.0 / sec / 1e9
    frac = gf / CEILING["gflops"]
    ref = REFERENCE.get(threads)
    vs = f"  {ref / sec:5.2f}x ref" if ref else ""
    print(
        f"{name:<13} {backend:<24} {sec * 1e3:9.1f} ms  RTF {sec / clip_s:7.4f}  "
        f"{gf:6.1f} GFLOP/s = {100 * frac:5.1f}% of matmul{vs}",
        flush=True,
    )


def main(argv):
    del argv
    ref_py = _REFERENCE_PYTHON.value
    if ref_py and not (os.path.isfile(ref_py) and os.access(ref_py, os.X_OK)):
        raise app.UsageError(f"--reference_python {ref_py}: not an executable file")
    clip_s = _CLIP.value
    cores = os.cpu_count()
    if _CONVERT_TO.value:
        return convert_child(_MODELS.value[0], _CONVERT_TO.value, Path(_WORK_DIR.value))
    if _TF_THREADS.value:
        tf.config.threading.set_intra_op_parallelism_threads(_TF_THREADS.value)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        if _REFERENCE_SECONDS.value:
            REFERENCE[_TF_THREADS.value] = _REFERENCE_SECONDS.value
    CEILING["gflops"] = matmul_gflops()
    if not _TF_ONLY.value:
        print(f"cores: {cores} (shared with other processes; load avg {os.getloadavg()})")
        print(
            f"tf.linalg.matmul 4096^2 float32: {CEILING['gflops']:.1f} GFLOP/s (the ceiling "
            "every row's percentage refers to)\n"
        )
    names = _MODELS.value
    if _WEIGHTS.value not in ("random", "golden"):
        names = [panns_keras.load_model(_WEIGHTS.value).spec.name]
    print(f"weights: {_WEIGHTS.value}; agreement clips: {_CLIPS.value}")
    for name in names:
        bench_model(name, clip_s, cores)
        tf.keras.backend.clear_session()
        gc.collect()
    if not _TF_ONLY.value:
        print(
            f"peak RSS: this process {peak_rss_gb():.1f} GB, largest child "
            f"{peak_rss_gb(resource.RUSAGE_CHILDREN):.1f} GB",
            flush=True,
        )


def convert_child(name, kind, work_dir):
    """Child process: converts the parent's model (weights in ``work_dir``) to one file."""
    model = make_model(name)
    model.load_weights(str(work_dir / WEIGHTS))
    clips = np.load(work_dir / CLIPS)
    if kind == "onnx":
        from panns_keras.export import onnx_export as X

        content = X.convert(model)
    else:
        variant = kind.removeprefix("tflite_")
        content = T.convert(model, variant, clips.shape[1], representative=clips)
    (work_dir / kind).write_bytes(content)
    print(f"peak_rss_gb={peak_rss_gb():.2f}", flush=True)


def convert_in_child(name, kind, work_dir):
    """``(bytes, child peak RSS GB)`` of ``kind`` converted by a child; raises on failure."""
    p = subprocess.run(
        [
            sys.executable,
            __file__,
            f"--models={name}",
            f"--convert_to={kind}",
            f"--work_dir={work_dir}",
            f"--weights={_WEIGHTS.value}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    path = work_dir / kind
    if p.returncode or not path.is_file():
        msg = (p.stderr.strip().splitlines() or [f"exit status {p.returncode}"])[-1]
        raise RuntimeError(f"{msg[-300:]} (exit status {p.returncode})")
    peak = [ln.split("=")[1] for ln in p.stdout.splitlines() if ln.startswith("peak_rss_gb=")]
    content = path.read_bytes()
    path.unlink()
    return content, float(peak[0]) if peak else float("nan")


def tf_one_thread_rows(name):
    """Keras / SavedModel rows at 1 thread, from a child process (fresh thread pools)."""
    ref = [f"--reference_seconds={REFERENCE[1]}"] if 1 in REFERENCE else []
    p = subprocess.run(
        [
            sys.executable,
            __file__,
            f"--models={name}",
            "--tf_only",
            "--tf_threads=1",
            f"--repeats={_REPEATS.value}",
            f"--weights={_WEIGHTS.value}",
            f"--clip_seconds={_CLIP.value}",
            *ref,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    rows = [ln for ln in p.stdout.splitlines() if ln.startswith(name)]
    if p.returncode or not rows:
        print(f"{name:<13} 1-thread TensorFlow run failed: {p.stderr.strip()[-300:]}")
    for ln in rows:
        print(ln, flush=True)


def agreement(label, got, ref, size=None, conv_gb=None, against="Keras"):
    stats = common.compare_scores(ref, got)
    mb = f"{size / 1e6:.1f} MB, " if size else ""
    if conv_gb is not None:
        mb += f"conversion peak RSS {conv_gb:.1f} GB, "
    print(
        f"{'':<13} {label}: {mb}vs {against} on {len(ref)} real windows: "
        f"max|d| {stats['max_abs']:.4f} mean|d| {stats['mean_abs']:.5f} "
        f"top5 {stats['top5_agreement']:.2f}",
        flush=True,
    )


def bench_onnx(name, work_dir, x, clips, ref, cores, clip_s, flops):
    from panns_keras.errors import UserError
    from panns_keras.export import onnx_export as X

    try:
        X.require_onnx()
        content, conv_gb = convert_in_child(name, "onnx", work_dir)
    except (UserError, RuntimeError) as e:
        print(f"{name:<13} onnx skipped: {e}")
        return
    agreement("onnx", X.OnnxRunner(content)(clips)[CLIPWISE], ref, len(content), conv_gb)
    for threads in sorted({1, cores}):
        r = X.OnnxRunner(content, num_threads=threads)
        row(
            name,
            f"onnxruntime {threads}thr",
            timeit(lambda r=r: r(x), _REPEATS.value),
            clip_s,
            flops,
            threads,
        )
        del r


def time_tflite(content, threads, x):
    r = T.TfliteRunner(content, num_threads=threads)
    return timeit(lambda: r(x), _REPEATS.value)


def tf_rows(name, model, x, clip_s, cores, flops):
    """Keras eager / XLA and SavedModel rows (their functions are freed on return)."""
    step = lambda v: model(v, training=False)["clipwise_output"]  # noqa: E731
    n = _TF_THREADS.value or cores
    thr = f"{n}thr"
    row(
        name,
        f"keras eager {thr}",
        timeit(lambda: np.asarray(step(x)), _REPEATS.value),
        clip_s,
        flops,
        n,
    )
    xla = tf.function(step, jit_compile=True)
    row(name, f"keras XLA {thr}", timeit(lambda: xla(x).numpy(), _REPEATS.value), clip_s, flops, n)
    with tempfile.TemporaryDirectory() as d:
        module = tf.Module()
        module.model = model
        serve = serving_function(model)
        tf.saved_model.save(module, d, signatures={"serving_default": serve})
        fn = tf.saved_model.load(d).signatures["serving_default"]
        row(
            name,
            f"savedmodel {thr}",
            timeit(lambda: fn(waveform=tf.constant(x)), _REPEATS.value),
            clip_s,
            flops,
            n,
        )


def run_reference(name, model, clips, samples, cores):
    """Runs the PyTorch reference beside this run (see the module doc); returns the model
    holding the reference's weights, or None when the reference cannot run this model."""
    from panns_keras.convert.converter import load_checkpoint_into_model

    ref_class = model.spec.reference_name
    if ref_class not in REFERENCE_CLASSES:
        print(f"{name:<13} reference: panns_inference has no {ref_class}; matmul fraction only")
        return None
    if _WEIGHTS.value != "random":
        print(f"{name:<13} reference: runs with its own seeded weights; use --weights=random")
        return None
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        np.save(work / CLIPS, clips)
        (work / "panns_data").mkdir()  # panns_inference reads its labels from $HOME/panns_data
        labels = Path(panns_keras.__file__).parent / "assets" / "class_labels_indices.csv"
        (work / "panns_data" / labels.name).write_bytes(labels.read_bytes())
        threads = ",".join(str(t) for t in sorted({1, cores}))
        p = subprocess.run(
            [
                _REFERENCE_PYTHON.value,
                str(Path(__file__).with_name("reference_child.py")),
                f"--model={ref_class}",
                f"--work_dir={work}",
                f"--threads={threads}",
                f"--repeats={_REPEATS.value}",
                f"--clip_samples={samples}",
                f"--frontend={json.dumps(dataclasses.asdict(model.spec.frontend))}",
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "HOME": str(work)},
        )
        if p.returncode:
            print(f"{name:<13} reference failed: {p.stderr.strip()[-300:]}")
            return None
        for line in p.stdout.splitlines():
            if line.startswith("threads="):
                t, sec = (kv.split("=")[1] for kv in line.split())
                REFERENCE[int(t)] = float(sec)
            elif line.startswith("torch="):
                print(f"{name:<13} reference: panns_inference {ref_class}, {line}")
        model = load_checkpoint_into_model(work / "reference.pth", name)
        theirs = np.load(work / "reference_scores.npy")
    ours = np.asarray(model(clips, training=False)["clipwise_output"])
    agreement("keras", ours, theirs, against="the reference")
    for t, sec in sorted(REFERENCE.items()):
        row(
            name,
            f"reference torch {t}thr",
            sec,
            _CLIP.value,
            PAPER_FLOPS.get(name, float("nan")),
            t,
        )
    return model


def bench_model(name, clip_s, cores):
    if not _TF_ONLY.value:  # re-measured per model: a shared machine's load drifts
        CEILING["gflops"] = matmul_gflops()
        print(
            f"{name}: tf.linalg.matmul 4096^2 float32 now {CEILING['gflops']:.1f} GFLOP/s "
            "(this model's rows refer to it)",
            flush=True,
        )
    model = make_model(name)
    sr = model.spec.sample_rate
    n = int(clip_s * sr)
    x = common.synthetic_windows(sr, n, count=1)
    flops = PAPER_FLOPS.get(name, float("nan")) if sr == 32000 else float("nan")
    clips = None
    if not _TF_ONLY.value:
        REFERENCE.clear()
        clips = representative_windows(_CLIPS.value, sr, n, max_windows=16)
        if _REFERENCE_PYTHON.value:
            model = run_reference(name, model, clips, n, cores) or model
    tf_rows(name, model, x, clip_s, cores, flops)
    if _TF_ONLY.value:
        return
    if cores > 1 and not _TF_THREADS.value:
        tf_one_thread_rows(name)
    ref = np.asarray(model(clips, training=False)["clipwise_output"])
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        model.save_weights(str(work / WEIGHTS))
        np.save(work / CLIPS, clips)
        # From here on only converted files are run: the Keras model goes before the
        # children start, so their memory is not added to it.
        del model
        gc.collect()
        bench_onnx(name, work, x, clips, ref, cores, clip_s, flops)
        for variant in _VARIANTS.value:
            try:
                content, conv_gb = convert_in_child(name, f"tflite_{variant}", work)
            except Exception as e:  # report and go on
                print(f"{name:<13} tflite {variant}: conversion failed: {e}")
                continue
            agreement(
                f"tflite {variant}",
                T.TfliteRunner(content)(clips)["clipwise_output"],
                ref,
                len(content),
                conv_gb,
            )
            for threads in sorted({1, cores}):
                sec = time_tflite(content, threads, x)
                row(name, f"tflite {variant} {threads}thr", sec, clip_s, flops, threads)
            del content
            gc.collect()
    print()


if __name__ == "__main__":
    app.run(main)
