"""EfficientAT MobileNets (mn04, mn10, dymn10) beside MobileNetV1 and Cnn14, same run, same CPU.

    .venv/bin/python benchmarks/efficient_models.py [--models mn04,mn10,dymn10,mobilenet_v1,cnn14]
        [--repeats 5] [--paths keras_xla,onnx,tflite_float32,tflite_dynamic_int8,tflite_int8]
        [--reference_python /tmp/eatref-venv/bin/python --reference_src /tmp/eatref]

Per model (32 kHz, seeded random weights, or the reference's own seeded weights when the
reference runs; neither changes the speed): trainable parameters; multiply-accumulates per
10 s clip counted from the TensorFlow graph of the Keras model (front end and network
apart); the published mAP, parameters and MACs (preset table: the EfficientAT README, the
PANNs paper); TFLite float32 and int8 file size and latency per 1 s and 10 s window at 1
thread; and, per 10 s clip, the latency of every CPU path (Keras XLA, onnxruntime, TFLite
float32 / dynamic int8 / int8) at batch 1 and 8, 1 thread and all cores. From those it
names the fastest path and gives mn10's speed-up over Cnn14 through each path. For mn10
(``--mediapipe``) it also writes ``mediapipe_int8`` (1 s window) and runs it through
MediaPipe's AudioClassifier.

MACs: Conv2D, depthwise, MatMul and BatchMatMul ops of the graph for a [1, 320000] input,
one multiply-accumulate per weight use (bias adds, norms and activations not counted),
the ops under the model's first layer (the log-mel front end) apart. EfficientAT's own
count (``helpers/flop_count.py``) counts the network's Conv2d and Linear layers on the
spectrogram, so the "network" column is the one to compare with its README. The dymn
graph runs each dynamic depthwise convolution once per kernel (K=4) and mixes the
outputs; the reference mixes the K kernels first and convolves once, so dymn's
"executed" count is larger than its "architecture" count, which counts a depthwise
convolution over an input already convolved once.

The PyTorch reference, side by side (as ``benchmarks/inference.py`` does for Cnn14): with
``--reference_python PY --reference_src DIR`` (an interpreter with torch, and a copy of
EfficientAT's ``models/`` and ``helpers/`` plus ``metadata/class_labels_indices.csv``;
torchvision / torchaudio stand-ins first on PYTHONPATH where they do not load, see
``--reference_shim``), this script runs the reference in that interpreter in this same run
(this file, ``--reference_child``): it builds ``get_model(width_mult=...)`` seeded, in eval
mode (dymn at Dy-Conv temperature 1, the released checkpoints'), saves its state dict,
which this script converts with panns_keras (both sides then hold the same weights; Keras
vs reference agreement is printed), and times EfficientAT's own inference pipeline,
``AugmentMelSTFT`` then the network on a 10 s waveform, under ``torch.no_grad`` at batch 1
and 8, 1 thread and all cores (median of ``--repeats`` after a warm-up, the same rule and
input length as the Keras side). Every speed-up is a ratio of two times of this run.

Processes: each model runs in a child of this script (``--child``) at all cores, and its
Keras rows once more in a child with TensorFlow on 1 thread (TensorFlow fixes its thread
pools at start-up); each TFLite / ONNX conversion runs in a grandchild (``--convert``),
so Cnn14's conversion memory is given back before the timing.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT / "tests" / "assets" / "audio"
CLIP_SECONDS = 10.0
SR = 32000
PATHS = ("keras_xla", "onnx", "tflite_float32", "tflite_dynamic_int8", "tflite_int8")
EAT_FAMILIES = ("mn", "dymn")


def timeit(fn, repeats):
    """Median seconds of ``repeats`` calls after one warm-up call (inference.py's rule)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(statistics.median(times))


# ----------------------------------------------------------------------------------------
# MACs from the graph


def _prod(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


def op_macs(op) -> int:
    """Multiply-accumulates of one graph op (0 for ops that are not conv / matmul)."""
    if op.type == "Conv2D":
        kh, kw, ci, _ = op.inputs[1].shape
        return _prod(op.outputs[0].shape) * int(kh) * int(kw) * int(ci)
    if op.type == "DepthwiseConv2dNative":
        kh, kw, _, _ = op.inputs[1].shape
        return _prod(op.outputs[0].shape) * int(kh) * int(kw)
    if op.type == "MatMul":
        a = op.inputs[0].shape
        k = a[0] if op.get_attr("transpose_a") else a[1]
        return _prod(op.outputs[0].shape) * int(k)
    if op.type in ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"):
        a = op.inputs[0].shape
        k = a[-2] if op.get_attr("adj_x") else a[-1]
        return _prod(op.outputs[0].shape) * int(k)
    if op.type in ("Conv3D", "Einsum", "Conv2DBackpropInput"):
        raise NotImplementedError(f"MAC count of {op.type} ({op.name})")
    return 0


def count_macs(model, length: int) -> dict:
    """Front-end / network MACs of ``model`` on one ``[1, length]`` clip (module doc)."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), autograph=False)
    graph = fn.get_concrete_function(tf.TensorSpec([1, length], tf.float32)).graph
    front_scope = f"/{model.layers[0].name}"
    out = {"front_end": 0, "network_executed": 0, "network_architecture": 0}
    depthwise_inputs = set()
    for op in graph.get_operations():
        macs = op_macs(op)
        if not macs:
            continue
        if front_scope in op.name:
            out["front_end"] += macs
            continue
        out["network_executed"] += macs
        if op.type == "DepthwiseConv2dNative":
            if op.inputs[0].name in depthwise_inputs:
                continue  # another kernel of a dynamic convolution over the same input
            depthwise_inputs.add(op.inputs[0].name)
        out["network_architecture"] += macs
    out["front_end_layer"] = model.layers[0].name
    return out


# ----------------------------------------------------------------------------------------
# grandchild: one conversion


def convert_main(a):
    import numpy as np

    import panns_keras
    from panns_keras.export import tflite as T

    work = Path(a.work_dir)
    model = panns_keras.build_model(a.convert)
    model.load_weights(str(work / "model.weights.h5"))
    if a.variant == "onnx":
        from panns_keras.export import onnx_export as X

        content = X.convert(model)
    else:
        windows = np.load(work / f"windows_{a.length}.npy")
        content = T.convert(model, a.variant, a.length, representative=windows)
    (work / f"{a.variant}_{a.length}.bin").write_bytes(content)


def convert_in_grandchild(name, variant, length, work):
    p = subprocess.run(
        [
            sys.executable,
            __file__,
            f"--convert={name}",
            f"--variant={variant}",
            f"--length={length}",
            f"--work_dir={work}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    path = Path(work) / f"{variant}_{length}.bin"
    if p.returncode or not path.is_file():
        lines = p.stderr.strip().splitlines() or [f"exit status {p.returncode}"]
        raise RuntimeError(lines[-1][-300:])
    content = path.read_bytes()
    path.unlink()
    return content


# ----------------------------------------------------------------------------------------
# child: one model


def keras_rows(model, x8, repeats, threads):
    import numpy as np
    import tensorflow as tf

    step = tf.function(lambda v: model(v, training=False)["clipwise_output"], jit_compile=True)
    rows = {}
    for batch in (1, 8):
        x = tf.constant(x8[:batch])
        rows[f"keras_xla|{threads}|{batch}"] = (
            timeit(lambda x=x: np.asarray(step(x)), repeats) / batch
        )
    return rows


def mediapipe_check(model, work, repeats):
    """mediapipe_int8 (1 s window) of ``model``: size, AudioClassifier scores vs Keras."""
    import numpy as np
    from mediapipe.tasks.python import audio
    from mediapipe.tasks.python.components.containers import audio_data
    from mediapipe.tasks.python.core import base_options

    from panns_keras.audio import load_audio
    from panns_keras.export import common
    from panns_keras.export import tflite as T
    from panns_keras.export.representative import representative_windows

    windows = representative_windows(AUDIO, SR, SR, max_windows=16)
    info = T.export_mediapipe(
        model,
        Path(work) / "mediapipe_int8.tflite",
        window_seconds=1.0,
        variant="int8",
        representative=windows,
        verify_inputs=windows[:4],
    )
    content = Path(info["path"]).read_bytes()
    options = audio.AudioClassifierOptions(
        base_options=base_options.BaseOptions(model_asset_buffer=content),
        running_mode=audio.RunningMode.AUDIO_CLIPS,
        max_results=527,
    )
    x = load_audio(AUDIO / "ovos_rooster.wav", SR)[:SR]
    clip = audio_data.AudioData.create_from_array(x, SR)
    with audio.AudioClassifier.create_from_options(options) as classifier:
        (result,) = classifier.classify(clip)
        sec = timeit(lambda: classifier.classify(clip), repeats)
    scores = np.zeros(527, np.float32)
    for c in result.classifications[0].categories:
        scores[c.index] = c.score
    ref = np.asarray(model(x[None], training=False)["clipwise_output"])
    stats = common.compare_scores(ref, scores[None])
    categories = len(result.classifications[0].categories)
    return {
        "bytes": len(content),
        "classify_s": sec,
        "max_abs": stats["max_abs"],
        "mean_abs": stats["mean_abs"],
        "categories": categories,
    }


def frontend_seconds(model, length, repeats):
    """Seconds of the model's first layer (the log-mel front end) alone as TFLite float32 at 1
    thread, batch 1: that layer frozen and converted with the plain TFLite converter."""
    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    layer = model.layers[0]
    fn = tf.function(lambda v: layer(v), autograph=False)
    concrete = fn.get_concrete_function(tf.TensorSpec([1, length], tf.float32))
    conv = tf.lite.TFLiteConverter.from_concrete_functions(
        [convert_variables_to_constants_v2(concrete)]
    )
    interpreter = Interpreter(model_content=conv.convert(), num_threads=1)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    x = np.random.default_rng(0).uniform(-0.1, 0.1, (1, length)).astype(np.float32)

    def run():
        interpreter.set_tensor(index, x)
        interpreter.invoke()

    return timeit(run, repeats)


def make_runner(variant, content, threads):
    """onnxruntime or TFLite runner of ``content`` on ``threads`` threads."""
    if variant == "onnx":
        from panns_keras.export import onnx_export as X

        return X.OnnxRunner(content, num_threads=threads)
    from panns_keras.export import tflite as T

    return T.TfliteRunner(content, num_threads=threads)


def child_main(a):
    import numpy as np
    import tensorflow as tf

    if a.tf_threads:
        tf.config.threading.set_intra_op_parallelism_threads(a.tf_threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    import panns_keras
    from panns_keras.export import common
    from panns_keras.export.representative import representative_windows

    name, cores, repeats = a.child, os.cpu_count(), a.repeats
    paths = a.paths.split(",")
    work = Path(a.work_dir)
    if a.reference_pt:
        from panns_keras.convert.converter import load_checkpoint_into_model

        model = load_checkpoint_into_model(a.reference_pt, name)
    else:
        model = panns_keras.build_model(name, seed=0)
    n10 = int(CLIP_SECONDS * SR)
    x8 = common.synthetic_windows(SR, n10, count=8)
    res = {"timings": {}}
    if a.keras_only:
        res["timings"].update(keras_rows(model, x8, repeats, a.tf_threads))
        print("RESULT " + json.dumps(res), flush=True)
        return
    res["params"] = int(sum(_prod(w.shape) for w in model.trainable_weights))
    res["params_all"] = int(model.count_params())
    res["macs"] = count_macs(model, n10)
    clips = representative_windows(AUDIO, SR, n10, max_windows=8)
    ref = np.asarray(model(clips, training=False)["clipwise_output"])
    if a.reference_scores:
        stats = common.compare_scores(np.load(a.reference_scores), ref)
        res["vs_reference"] = {
            "max_abs": stats["max_abs"],
            "mean_abs": stats["mean_abs"],
            "windows": len(clips),
        }
    if "keras_xla" in paths:
        res["timings"].update(keras_rows(model, x8, repeats, cores))
    model.save_weights(str(work / "model.weights.h5"))
    res["files"] = {}
    for length in (SR, n10):  # 1 s and 10 s windows
        windows = representative_windows(AUDIO, SR, length, max_windows=16)
        np.save(work / f"windows_{length}.npy", windows)
        variants = [p for p in paths if p.startswith("tflite_") or p == "onnx"]
        if length != n10:
            variants = [v for v in variants if v in ("tflite_float32", "tflite_int8")]
        for path in variants:
            variant = path.removeprefix("tflite_")
            try:
                content = convert_in_grandchild(name, variant, length, work)
            except RuntimeError as e:
                res["files"][f"{path}|{length}"] = {"error": str(e)}
                continue
            make = functools.partial(make_runner, variant, content)
            got = make(1)(clips if length == n10 else windows[:8])[CLIPWISE_KEY]
            want = (
                ref
                if length == n10
                else np.asarray(model(windows[:8], training=False)["clipwise_output"])
            )
            stats = common.compare_scores(want, got)
            res["files"][f"{path}|{length}"] = {
                "bytes": len(content),
                "max_abs": stats["max_abs"],
                "mean_abs": stats["mean_abs"],
            }
            thread_counts = sorted({1, cores}) if length == n10 else [1]
            for t in thread_counts:
                runner = make(t)
                for batch in (1, 8) if length == n10 else (1,):
                    x = x8[:batch] if length == n10 else x8[:1, :length]
                    sec = timeit(lambda r=runner, x=x: r(x), repeats) / batch
                    key = f"{path}|{t}|{batch}" if length == n10 else f"{path}|{t}|1|1s"
                    res["timings"][key] = sec
                del runner
    for length, key in ((SR, "frontend_tflite|1|1|1s"), (n10, "frontend_tflite|1|1")):
        res["timings"][key] = frontend_seconds(model, length, repeats)
    if name in a.mediapipe.split(","):
        try:
            res["mediapipe_int8"] = mediapipe_check(model, work, repeats)
        except Exception as e:  # report and go on
            res["mediapipe_int8"] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
    print("RESULT " + json.dumps(res), flush=True)


CLIPWISE_KEY = "clipwise_output"


def run_child(args, name, work, extra=()):
    cmd = [
        sys.executable,
        __file__,
        f"--child={name}",
        f"--work_dir={work}",
        f"--repeats={args.repeats}",
        f"--paths={args.paths}",
        f"--mediapipe={args.mediapipe}",
        *extra,
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not lines:
        raise RuntimeError(f"{name}: child failed: {p.stderr.strip()[-1500:]}")
    return json.loads(lines[-1][len("RESULT ") :])


# ----------------------------------------------------------------------------------------
# the reference's interpreter


def reference_child_main(a):
    """Runs in the reference's interpreter (torch, EfficientAT's code): no panns_keras."""
    import contextlib
    import io

    import numpy as np
    import torch

    work = Path(a.work_dir)
    torch.manual_seed(a.seed)
    with contextlib.redirect_stdout(io.StringIO()):  # get_model prints the network
        from models.preprocess import AugmentMelSTFT

        if a.reference_child.startswith("dymn"):
            from models.dymn.model import get_model

            # Dy-Conv temperature 1: the released AudioSet checkpoints' (pretrain_final_temp)
            net = get_model(width_mult=a.width, T_max=1.0)
        else:
            from models.mn.model import get_model

            net = get_model(width_mult=a.width)
        mel = AugmentMelSTFT(
            n_mels=128, sr=SR, win_length=800, hopsize=320, n_fft=1024, freqm=0, timem=0
        )
    net.eval()
    mel.eval()
    torch.save(net.state_dict(), work / "reference.pt")

    def forward(x):  # EfficientAT's inference.py: mel, then the network on [B, 1, mels, frames]
        logits, _ = net(mel(x).unsqueeze(1))
        return torch.sigmoid(logits)

    clips = torch.from_numpy(np.load(work / "clips.npy"))
    with torch.no_grad():
        np.save(work / "reference_scores.npy", forward(clips).numpy())
    rng = np.random.default_rng(a.seed)
    x8 = torch.from_numpy(rng.uniform(-0.1, 0.1, (8, int(CLIP_SECONDS * SR))).astype(np.float32))
    out = {
        "torch": torch.__version__,
        "params": sum(p.numel() for p in net.parameters()),
        "timings": {},
    }
    for threads in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(threads)
        for batch in (1, 8):
            x = x8[:batch]
            with torch.no_grad():
                sec = timeit(lambda x=x: forward(x), a.repeats)
            out["timings"][f"reference_torch|{threads}|{batch}"] = sec / batch
    print("RESULT " + json.dumps(out), flush=True)


def run_reference(args, name, width, work, clips):
    import numpy as np

    np.save(Path(work) / "clips.npy", clips)
    meta = Path(work) / "metadata"
    meta.mkdir(exist_ok=True)  # helpers/utils.py reads the labels relative to the cwd
    labels = ROOT / "panns_keras" / "assets" / "class_labels_indices.csv"
    (meta / labels.name).write_bytes(labels.read_bytes())
    path = [p for p in (args.reference_shim, args.reference_src) if p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    threads = ",".join(str(t) for t in sorted({1, os.cpu_count()}))
    p = subprocess.run(
        [
            args.reference_python,
            str(Path(__file__).resolve()),
            f"--reference_child={name}",
            f"--width={width}",
            f"--work_dir={work}",
            f"--threads={threads}",
            f"--repeats={args.repeats}",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=work,
        env=env,
    )
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not lines:
        raise RuntimeError(f"reference failed: {p.stderr.strip()[-800:]}")
    return json.loads(lines[-1][len("RESULT ") :])


# ----------------------------------------------------------------------------------------
# parent: tables


def published(name):
    """(mAP, MACs as published, source) from the preset table."""
    from panns_keras.presets.table import BUILTIN, EFFICIENTAT, PAPER_MAP

    for entry in EFFICIENTAT.values():
        if entry[1] == name and entry[0].startswith(f"{name}_as"):
            return entry[3], f"{entry[5]:.2f} G MACs" if entry[5] else "-", "EfficientAT README"
    if name in BUILTIN:
        from panns_keras.models.registry import PAPER_FLOPS

        flops = PAPER_FLOPS.get(name)  # the paper's "multi-adds" figure
        return (
            PAPER_MAP.get(name),
            f"{flops / 1e9:.1f} G multi-adds" if flops else "-",
            "PANNs paper",
        )
    return None, "-", ""


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return "unknown CPU", ""
    model = next(
        (ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")),
        "unknown CPU",
    )
    flags = next(
        (ln.split(":", 1)[1].split() for ln in out.splitlines() if ln.startswith("Flags")), []
    )
    wanted = ("avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")
    return model, " ".join(f for f in wanted if f in flags)


def fmt_ms(sec):
    return f"{sec * 1e3:8.1f}" if sec is not None else f"{'-':>8}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="mn04,mn10,dymn10,mobilenet_v1,cnn14")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--paths", default=",".join(PATHS))
    p.add_argument("--mediapipe", default="mn10", help="models to export as mediapipe_int8")
    p.add_argument("--reference_python", help="interpreter with torch (EfficientAT reference)")
    p.add_argument("--reference_src", help="folder holding EfficientAT's models/ and helpers/")
    p.add_argument(
        "--reference_shim",
        default="/work/shared/tools/eat_reference_shim",
        help="torchvision / torchaudio stand-ins, first on the reference's path",
    )
    p.add_argument("--report_from", help="print the tables from the log of an earlier run")
    p.add_argument("--cores", type=int, help="with --report_from: that run's core count")
    # internal modes
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--convert", help=argparse.SUPPRESS)
    p.add_argument("--reference_child", help=argparse.SUPPRESS)
    p.add_argument("--variant", help=argparse.SUPPRESS)
    p.add_argument("--length", type=int, help=argparse.SUPPRESS)
    p.add_argument("--work_dir", help=argparse.SUPPRESS)
    p.add_argument("--tf_threads", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--keras_only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--reference_pt", help=argparse.SUPPRESS)
    p.add_argument("--reference_scores", help=argparse.SUPPRESS)
    p.add_argument("--width", type=float, default=1.0, help=argparse.SUPPRESS)
    p.add_argument("--threads", default="1", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.reference_child:
        return reference_child_main(a)
    if a.convert:
        return convert_main(a)
    if a.child:
        return child_main(a)
    if a.report_from:  # the tables again from a log of an earlier run (its RAW lines)
        results = {}
        for line in Path(a.report_from).read_text().splitlines():
            if line.startswith("RAW "):
                _, name, raw = line.split(" ", 2)
                results[name] = json.loads(raw)
        return report(results, list(results), a.cores or os.cpu_count(), a)
    if a.reference_python and not a.reference_src:
        p.error("--reference_python needs --reference_src (EfficientAT's models/ and helpers/)")
    for path in (a.reference_python, a.reference_src):
        if path and not os.path.exists(path):
            p.error(f"{path}: not found")
    return parent_main(a)


def parent_main(a):
    from panns_keras.export.representative import representative_windows
    from panns_keras.models.registry import DYMN_WIDTHS, MN_WIDTHS, MODEL_SPECS

    cores = os.cpu_count()
    model_name, flags = cpu_name()
    print(f"CPU: {model_name} ({flags}); {cores} cores; load average {os.getloadavg()}")
    print(
        f"clip {CLIP_SECONDS:g} s at {SR} Hz; median of {a.repeats} after a warm-up; "
        "seeded random weights",
        flush=True,
    )
    names = a.models.split(",")
    results = {}
    for name in names:
        family = MODEL_SPECS[name].family
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as work:
            extra, ref = [], None
            if a.reference_python and family in EAT_FAMILIES:
                clips = representative_windows(AUDIO, SR, int(CLIP_SECONDS * SR), max_windows=8)
                width = {**MN_WIDTHS, **DYMN_WIDTHS}[name]
                try:
                    ref = run_reference(a, name, width, work, clips)
                    extra = [
                        f"--reference_pt={Path(work) / 'reference.pt'}",
                        f"--reference_scores={Path(work) / 'reference_scores.npy'}",
                    ]
                except RuntimeError as e:
                    print(f"{name}: {e}")
            res = run_child(a, name, work, extra)
            if "keras_xla" in a.paths.split(",") and cores > 1:
                one = run_child(a, name, work, [*extra, "--tf_threads=1", "--keras_only"])
                res["timings"].update(one["timings"])
        if ref:
            res["timings"].update(ref["timings"])
            res["reference"] = {"torch": ref["torch"], "params": ref["params"]}
        results[name] = res
        print(f"{name}: done in {time.perf_counter() - t0:.0f} s", flush=True)
        print(f"RAW {name} {json.dumps(res)}", flush=True)  # for --report_from
    report(results, names, cores, a)


def report(results, names, cores, a):
    n1, n10 = SR, int(CLIP_SECONDS * SR)
    print("\n## Size, complexity, TFLite latency (1 thread, batch 1)\n")
    print(
        "| model | params | MACs front end | MACs network | published MACs | published mAP "
        "| float32 MB | int8 MB | float32 1 s | float32 10 s | int8 1 s | int8 10 s "
        "| front end alone 1 s / 10 s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        r = results[name]
        m = r["macs"]
        net = f"{m['network_architecture'] / 1e9:.3f} G"
        if m["network_executed"] != m["network_architecture"]:
            net += f" ({m['network_executed'] / 1e9:.3f} G executed)"
        mp, pmacs, src = published(name)
        files = r["files"]

        def size(key, files=files):
            f = files.get(key, {})
            return f"{f['bytes'] / 1e6:.2f}" if "bytes" in f else "-"

        def ms(key, r=r):
            s = r["timings"].get(key)
            return f"{s * 1e3:.1f} ms" if s is not None else "-"

        print(
            f"| {name} | {r['params'] / 1e6:.3f} M | {m['front_end'] / 1e9:.3f} G | {net} | "
            f"{pmacs} ({src}) | {mp if mp else '-'} | "
            f"{size(f'tflite_float32|{n10}')} | {size(f'tflite_int8|{n10}')} | "
            f"{ms('tflite_float32|1|1|1s')} | {ms('tflite_float32|1|1')} | "
            f"{ms('tflite_int8|1|1|1s')} | {ms('tflite_int8|1|1')} | "
            f"{ms('frontend_tflite|1|1|1s')} / {ms('frontend_tflite|1|1')} |"
        )
    sizes = []
    for n in names:
        f = results[n]["files"]
        f32 = f.get(f"tflite_float32|{n1}", {}).get("bytes", 0) / 1e6
        i8 = f.get(f"tflite_int8|{n1}", {}).get("bytes", 0) / 1e6
        sizes.append(f"{n} float32 {f32:.2f} / int8 {i8:.2f}")
    print("\nFile sizes of the 1 s windows (MB): " + ", ".join(sizes))
    print("\nAgreement of each file with Keras float32 (max / mean |score diff|, real windows):")
    for name in names:
        parts = []
        for key, f in sorted(results[name]["files"].items()):
            path, length = key.split("|")
            tag = f"{path} {int(length) / SR:g}s"
            parts.append(
                f"{tag} {f['max_abs']:.1e}/{f['mean_abs']:.1e}"
                if "bytes" in f
                else f"{tag} FAILED: {f['error']}"
            )
        print(f"  {name}: " + "; ".join(parts))
    for name in names:
        if "vs_reference" in results[name]:
            v = results[name]["vs_reference"]
            ref = results[name]["reference"]
            print(
                f"  {name}: Keras (reference's weights) vs EfficientAT PyTorch on {v['windows']} "
                f"real 10 s windows: max {v['max_abs']:.2e} mean {v['mean_abs']:.2e}; torch "
                f"{ref['torch']}, reference parameters {ref['params']:,} "
                f"(here {results[name]['params']:,})"
            )

    paths = [p for p in a.paths.split(",")] + ["reference_torch"]
    cols = [(t, b) for t in sorted({1, cores}) for b in (1, 8)]
    print("\n## Milliseconds per 10 s clip (batch 8: per clip; TFLite runs a batch clip by clip)\n")
    print("| model | path | " + " | ".join(f"{t} thr, batch {b}" for t, b in cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for name in names:
        tm = results[name]["timings"]
        for path in paths:
            if not any(f"{path}|{t}|{b}" in tm for t, b in cols):
                continue
            cells = []
            for t, b in cols:
                s = tm.get(f"{path}|{t}|{b}")
                ref = tm.get(f"reference_torch|{t}|{b}")
                cell = f"{s * 1e3:.1f}" if s is not None else "-"
                if s is not None and ref and path != "reference_torch":
                    cell += f" ({ref / s:.2f}x ref)"
                cells.append(cell)
            print(f"| {name} | {path} | " + " | ".join(cells) + " |")

    print("\n## Fastest CPU path per model (1 thread, batch 1, 10 s)\n")
    ours = [p for p in paths if p != "reference_torch"]
    fastest = {}
    for name in names:
        tm = results[name]["timings"]
        cand = {p: tm[f"{p}|1|1"] for p in ours if f"{p}|1|1" in tm}
        if cand:
            fastest[name] = min(cand, key=cand.get)
            print(f"- {name}: {fastest[name]} {cand[fastest[name]] * 1e3:.1f} ms")
    if "mn10" in results and "cnn14" in results:
        print("\nmn10 vs cnn14 through the same path, 10 s clip (cnn14 ms / mn10 ms):")
        tm, tc = results["mn10"]["timings"], results["cnn14"]["timings"]
        for path in ours:
            cells = [
                f"{t} thr b{b} {tc[k] / tm[k]:.1f}x"
                for t, b in cols
                if (k := f"{path}|{t}|{b}") in tm and k in tc
            ]
            if cells:
                print(f"- {path}: " + ", ".join(cells))
        best = fastest.get("mn10")
        k = f"{best}|1|1"
        if best and k in tc:
            ratio = tc[k] / tm[k]
            print(
                f"\nGOAL mn10 >= 15x faster than cnn14 through the project's fastest CPU path "
                f"({best}, 1 thread, batch 1): {ratio:.1f}x -> "
                f"{'MET' if ratio >= 15 else 'NOT MET'}"
            )
        other = fastest.get("cnn14")
        k = f"{other}|1|1"
        if other and other != best and k in tm:
            print(
                f"     through cnn14's fastest path ({other}, 1 thread, batch 1): "
                f"{tc[k] / tm[k]:.1f}x"
            )
    for name in ("mn04", "mn10", "dymn10"):
        if name not in results or name not in fastest:
            continue
        tm, best = results[name]["timings"], fastest[name]
        ratios = [
            (t, b, tm[f"reference_torch|{t}|{b}"] / tm[f"{best}|{t}|{b}"])
            for t, b in cols
            if f"reference_torch|{t}|{b}" in tm and f"{best}|{t}|{b}" in tm
        ]
        if ratios:
            text = ", ".join(f"{t} thr b{b} {r:.2f}x" for t, b, r in ratios)
            verdict = ""
            if name == "mn10":
                verdict = " -> " + ("MET" if min(r for *_, r in ratios) >= 1.5 else "NOT MET")
                verdict += " (goal >= 1.5x at every thread count and batch)"
            print(
                f"{'GOAL ' if name == 'mn10' else ''}{name} {best} vs EfficientAT PyTorch "
                f"(same run, same threads and batch): {text}{verdict}"
            )
        elif a.reference_python is None and name == names[0]:
            print("reference: skipped (give --reference_python and --reference_src)")
    for name in names:
        mp = results[name].get("mediapipe_int8")
        if mp is None:
            continue
        if "error" in mp:
            print(f"\n{name} mediapipe_int8: FAILED: {mp['error']}")
            continue
        ok = mp["bytes"] <= 6e6
        goal = "GOAL " if name == "mn10" else ""
        print(
            f"\n{goal}{name} mediapipe_int8 (1 s window) {mp['bytes'] / 1e6:.2f} MB <= 6 MB -> "
            f"{'MET' if ok else 'NOT MET'}; MediaPipe AudioClassifier loaded and ran it: "
            f"{mp['categories']} categories, {mp['classify_s'] * 1e3:.1f} ms per 1 s clip, vs "
            f"Keras max {mp['max_abs']:.4f} mean {mp['mean_abs']:.5f}"
        )
    print(f"\nload average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
