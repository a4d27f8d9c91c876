"""Seconds to build each model on the Keras backend in use (``KERAS_BACKEND``), with the
backbones' NumPy-drawn kernels and with Keras's own ``GlorotUniform`` draw for comparison.

Under JAX, Keras draws each kernel with ``jax.random``, which compiles one XLA program per
weight shape; ``models/initializers.NumpyGlorotUniform`` draws the same distribution with
NumPy. Each (model, initialiser) pair runs in a fresh subprocess (nothing compiled before it),
twice; the faster is printed.

    KERAS_BACKEND=jax python benchmarks/build_time.py [--models res1dnet31,cnn14]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from bench_common import cpu_description

_CHILD = """
import json, sys, time
import keras
import panns_keras
from panns_keras.models import blocks

if sys.argv[2] == "keras":  # the layer factories with Keras's own GlorotUniform draw
    class KerasDraw(keras.initializers.GlorotUniform):
        pass
    blocks.NumpyGlorotUniform = KerasDraw
panns_keras.build_model("cnn6", num_classes=2)  # first-use costs (context, imports) out
start = time.perf_counter()
panns_keras.build_model(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - start, "backend": keras.backend.backend()}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="res1dnet31,cnn14,mobilenet_v1")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    print(f"CPU: {cpu_description()}")
    for name in args.models.split(","):
        row = {}
        for draw in ("numpy", "keras"):
            times = []
            for _ in range(args.repeats):
                p = subprocess.run(
                    [sys.executable, "-c", _CHILD, name, draw],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                result = json.loads(p.stdout.strip().splitlines()[-1])
                times.append(result["seconds"])
            row[draw] = min(times)
        print(
            f"{result['backend']:<10} {name:<14} build: NumPy draw {row['numpy']:.2f} s, "
            f"Keras draw {row['keras']:.2f} s"
        )


if __name__ == "__main__":
    main()
