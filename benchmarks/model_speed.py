"""Inference speed of the models on this machine's CPU, beside its matmul ceiling.

Prints, for cnn14, mobilenet_v1 and wavegram_logmel_cnn14 (golden-rule weights, 10 s clips at
32 kHz): seconds per clip at batch 1 and 8 for plain eager ``model(x)``, ``model.predict``
as ``panns_keras.load_model`` returns it (XLA-compiled), and the same under
``mixed_bfloat16`` (with its max |score diff| from float32); the achieved GFLOP/s (the
paper's FLOP counts per 10 s clip), the process's peak memory, and the GFLOP/s of a
4096x4096 float32 ``tf.linalg.matmul`` on the same cores.

Each model runs in its own subprocess so peak memory is per model.

    python benchmarks/model_speed.py [--models cnn14,mobilenet_v1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FLOPS_PER_CLIP = {  # paper Table XII "multi-adds" (= FLOPs, 2 per MAC) per 10 s clip
    "cnn14": 42.220e9,
    "mobilenet_v1": 3.614e9,
    "wavegram_logmel_cnn14": 53.510e9,
    "cnn6": 21.986e9,
    "cnn10": 28.166e9,
    "resnet38": 48.962e9,
}
# No reference times here: a ratio to the reference is only meaningful when both ran in the
# same process tree on the same machine; this script states the fraction of the matmul
# ceiling measured in the same run instead.


def matmul_gflops(repeats: int = 5) -> float:
    import tensorflow as tf

    a = tf.random.normal((4096, 4096))
    f = tf.function(lambda: tf.linalg.matmul(a, a))
    f().numpy()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f().numpy()
        best = min(best, time.perf_counter() - t)
    return 2 * 4096**3 / best / 1e9


def _time(fn, repeats):
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def run_one(name: str, repeats: int) -> dict:
    import keras
    import numpy as np

    import panns_keras
    from panns_keras.labels import audioset
    from panns_keras.models.saving import save_model_dir

    rows = {}
    x8 = np.random.default_rng(0).uniform(-0.5, 0.5, (8, 320000)).astype("float32")
    model = panns_keras.build_model(name, seed=0)
    print(f"# panns_keras from {os.path.dirname(panns_keras.__file__)}", file=sys.stderr)
    # Golden-rule weights give realistic, unsaturated scores (random init gives ~0.5 everywhere,
    # which would hide the bfloat16 score error).
    from bench_common import golden_weights

    from panns_keras.convert.mapping import assign_state_dict

    assign_state_dict(model, golden_weights(model.spec.reference_name))
    with tempfile.TemporaryDirectory() as tmp:
        save_model_dir(model, tmp + "/m", audioset())
        model = panns_keras.load_model(tmp + "/m")  # the path users get
        ref = {}
        for batch in (1, 8):
            x = x8[:batch]
            eager = _time(lambda x=x, m=model: np.asarray(m(x)["clipwise_output"]), 1)
            pred = _time(
                lambda x=x, m=model, b=batch: m.predict(x, verbose=0, batch_size=b), repeats
            )
            ref[batch] = model.predict(x, verbose=0, batch_size=batch)["clipwise_output"]
            rows[f"b{batch}"] = {
                "eager_s_per_clip": eager / batch,
                "predict_s_per_clip": pred / batch,
            }
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        bf = panns_keras.load_model(tmp + "/m")
        for batch in (1, 8):
            x = x8[:batch]
            t = _time(lambda x=x, b=batch: bf.predict(x, verbose=0, batch_size=b), repeats)
            out = bf.predict(x, verbose=0, batch_size=batch)["clipwise_output"]
            rows[f"b{batch}"]["bf16_s_per_clip"] = t / batch
            rows[f"b{batch}"]["bf16_max_score_diff"] = float(np.max(np.abs(out - ref[batch])))
    rows["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cnn14,mobilenet_v1,wavegram_logmel_cnn14")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.repeats)))
        return
    ceiling = matmul_gflops()
    print(f"cores: {os.cpu_count()}  4096x4096 float32 matmul: {ceiling:.0f} GFLOP/s")
    header = (
        f"{'model':<22}{'batch':>5}{'eager s/clip':>14}{'predict s/clip':>16}"
        f"{'GFLOP/s':>9}{'%ceil':>7}{'bf16 s/clip':>13}{'bf16 %ceil':>11}"
        f"{'bf16 |diff|':>12}{'peak GiB':>10}"
    )
    print(header)
    for name in args.models.split(","):
        out = subprocess.run(
            [sys.executable, __file__, "--one", name, "--repeats", str(args.repeats)],
            capture_output=True,
            text=True,
        )
        if out.returncode:
            print(f"{name}: failed\n{out.stderr[-2000:]}")
            continue
        rows = json.loads(out.stdout.strip().splitlines()[-1])
        for batch in (1, 8):
            r = rows[f"b{batch}"]
            gflops = FLOPS_PER_CLIP[name] / r["predict_s_per_clip"] / 1e9
            bf16 = FLOPS_PER_CLIP[name] / r["bf16_s_per_clip"] / 1e9
            print(
                f"{name:<22}{batch:>5}{r['eager_s_per_clip']:>14.3f}"
                f"{r['predict_s_per_clip']:>16.3f}{gflops:>9.0f}{100 * gflops / ceiling:>6.0f}%"
                f"{r['bf16_s_per_clip']:>13.3f}{100 * bf16 / ceiling:>10.0f}%"
                f"{r['bf16_max_score_diff']:>12.1e}{rows['peak_rss_gib']:>10.2f}"
            )


if __name__ == "__main__":
    main()
