"""Where the time of one TensorFlow training step goes: a per-op profile, reduced to a table.

python benchmarks/train_profile.py --model=cnn14 --batch_size=8 --steps=2 [--fused_batchnorm]

Runs the trainer's own step (``train/backends/tf_engine.py`` from the packaged
``audioset:<model>`` recipe, synthetic 10 s clips, float32) under ``tf.profiler`` for
``--steps`` steps after a warm-up, reads the trace it wrote (the XSpace protobuf), and sums the
host time of every TensorFlow op twice: by op type (Conv2DBackpropFilter, MatMul, ...) and
by what it belongs to, from its name scope: front end (STFT/log-mel), BatchNorm, the
convolutions of each block (forward and backward), pooling, the head, the optimizer, other.
Times are per step; ops of both threads are added, so the total can exceed the step's wall time
(shown beside it).
"""

from __future__ import annotations

import collections
import glob
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
from absl import app, flags

_MODEL = flags.DEFINE_string("model", "cnn14", "Model (panns_keras.list_models()).")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Clips per step after mixup (2x are fed).")
_STEPS = flags.DEFINE_integer("steps", 2, "Profiled steps (after one warm-up step).")
_FUSED = flags.DEFINE_bool("fused_batchnorm", False, "train.fused_batchnorm.")
_XLA = flags.DEFINE_bool("jit_compile", False, "train.jit_compile.")
_TOP = flags.DEFINE_integer("top", 15, "Op types listed.")

# name-scope part -> group (first match wins; checked on the lower-cased op name)
GROUPS = [
    ("optimizer", ("torch_adam", "adam/", "sgd/", "optimizer")),
    ("front end (STFT, log-mel)", ("logmel", "spectrogram", "stft", "log_mel")),
    ("BatchNorm", ("bn0", "_bn", "batch_norm", "batchnorm", "/bn")),
    ("pooling", ("pool",)),
    ("head (fc, attention)", ("fc1", "fc_audioset", "att_block", "mlp_")),
    ("convolutions", ("conv",)),
    ("mixup, SpecAugment, dropout", ("mixup", "spec_aug", "dropout")),
    ("loss", ("binary_crossentropy", "loss", "clamped_log")),
]


def group_of(name: str) -> str:
    low = name.lower()
    for group, keys in GROUPS:
        if any(k in low for k in keys):
            return group
    return "other"


def read_ops(logdir: str) -> list[tuple[str, str, float]]:
    """``(op name, op type, seconds)`` of every TensorFlow op event in the trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    files = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
    if not files:
        raise SystemExit(f"no *.xplane.pb under {logdir}")
    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(files[0]).read_bytes())
    out = []
    for plane in space.planes:
        if "/host:CPU" not in plane.name:
            continue
        meta = plane.event_metadata
        for line in plane.lines:  # the executor's threads (tf_Compute/...)
            if line.name == "python":
                continue
            for ev in line.events:
                m = meta[ev.metadata_id]
                # An op event is "node name:OpType"; executor bookkeeping is "Class::Method".
                if ":" not in m.name or "::" in m.name:
                    continue
                name, _, kind = m.name.rpartition(":")
                kind = kind.strip()
                if kind.startswith("__inference") or kind in (
                    "PartitionedCall",
                    "StatefulPartitionedCall",
                ):
                    continue  # a function call: its ops are counted themselves
                out.append((name, kind, ev.duration_ps / 1e12))
    return out


def main(argv) -> None:
    del argv
    import keras
    import tensorflow as tf

    from panns_keras import configs
    from panns_keras.train import step as step_lib
    from panns_keras.train import trainer

    c = configs.get_config(f"audioset:{_MODEL.value}")
    c.train.batch_size = _BATCH.value
    c.train.strategy = "default"
    c.train.fused_batchnorm = _FUSED.value
    c.train.jit_compile = _XLA.value
    c.data.source = "synthetic"
    c.data.train_files = ""
    from panns_keras.models import kernels

    kernels.set_fused_batchnorm(_FUSED.value)
    with tempfile.TemporaryDirectory() as tmp:
        engine = trainer.make_engine(c, Path(tmp))
        keras.utils.set_random_seed(0)
        engine.build(lambda: trainer.build_for_training(c))
        engine.start(None, synthetic=True)

        def one(i):
            lam = step_lib.mixup_lambdas(0, i, engine.spec.global_batch, 1.0)
            loss, _ = engine.train_step(lam)
            return float(np.asarray(loss))

        one(0)  # trace + warm-up
        logdir = os.path.join(tmp, "profile")
        tf.profiler.experimental.start(logdir)
        t0 = time.perf_counter()
        for i in range(_STEPS.value):
            one(i + 1)
        wall = (time.perf_counter() - t0) / _STEPS.value
        tf.profiler.experimental.stop()
        ops = read_ops(logdir)
    n = _STEPS.value
    total = sum(s for _, _, s in ops) / n
    by_kind: dict[str, float] = collections.Counter()
    by_group: dict[str, float] = collections.Counter()
    for name, kind, s in ops:
        by_kind[kind] += s / n
        grad = "backward" if "gradient" in name.lower() or "grad" in kind.lower() else "forward"
        by_group[(group_of(name), grad)] += s / n
    print(
        f"{_MODEL.value} batch {_BATCH.value} (mixed from {2 * _BATCH.value}), float32, "
        f"fused_batchnorm={_FUSED.value}, jit={_XLA.value}: {wall:.2f} s/step wall, "
        f"{total:.2f} s of op time per step (both threads)"
    )
    print("\n| part | forward s | backward s | share |\n| --- | --- | --- | --- |")

    def share(g):
        return by_group[(g, "forward")] + by_group[(g, "backward")]

    groups = sorted({g for g, _ in by_group}, key=lambda g: -share(g))
    for g in groups:
        f, b = by_group[(g, "forward")], by_group[(g, "backward")]
        print(f"| {g} | {f:.3f} | {b:.3f} | {100 * (f + b) / total:.1f}% |")
    print("\n| op type | s per step | share |\n| --- | --- | --- |")
    for kind, s in sorted(by_kind.items(), key=lambda kv: -kv[1])[: _TOP.value]:
        print(f"| {kind} | {s:.3f} | {100 * s / total:.1f}% |")


if __name__ == "__main__":
    app.run(main)
