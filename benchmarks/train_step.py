"""Training throughput of the trainer's own step: clips/s, GFLOP/s, peak memory.

python benchmarks/train_step.py --models=cnn14 --batch_size=8 --steps=3
  [--precisions=float32,mixed_bfloat16] [--xla=off,on] [--data=synthetic|'train/*.tfrecord']
  [--device=/CPU:0|/GPU:0]

Each configuration runs `panns_keras.train.trainer.make_step_fns`, the step `panns-keras
train` runs: the reference recipe of configs/audioset.py (Adam with amsgrad, BCE on
probabilities, SpecAugment, log-mel mixup of 2 x batch clips down to batch, balanced
sampling), fed by `make_train_dataset` through `distribute_datasets_from_function` when
--data names TFRecords (32 kHz, 10 s clips: `panns-keras prepare ... --clip_seconds=10`),
or by one fixed synthetic batch. GFLOP/s = 3 x forward FLOPs (paper figures per 10 s clip)
x clips/s, beside a 4096x4096 float32 matmul measured in the same run, and their ratio (the
fraction of the same-run matmul ceiling; never a ratio to a time measured elsewhere).
--fused_batchnorm: the opt-in FusedBatchNormV3 training kernel. Peak memory: GPU
allocator peak, or the process's peak RSS on CPU (cumulative over the configurations).
"""

from __future__ import annotations

import resource
import time

import tensorflow as tf
from absl import app, flags

PAPER_FLOPS = {"cnn14": 42.22e9, "cnn6": 21.986e9, "mobilenet_v1": 3.614e9}
# No reference times here: a ratio to the reference is stated only from a same-run
# comparison; this script prints the fraction of the matmul ceiling of this run.

_MODELS = flags.DEFINE_list("models", ["cnn14", "cnn6", "mobilenet_v1"], "Models.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Clips per step (after mixup).")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps (after one warm-up step).")
_PREC = flags.DEFINE_list("precisions", ["float32", "mixed_bfloat16"], "Precision policies.")
_XLA = flags.DEFINE_list("xla", ["off", "on"], "train.jit_compile settings.")
_DATA = flags.DEFINE_string("data", "synthetic", "'synthetic' or a TFRecord glob (32 kHz 10 s).")
_FUSED = flags.DEFINE_bool("fused_batchnorm", False, "FusedBatchNormV3 training kernel "
                           "(train.fused_batchnorm; default: the exact two-pass one).")
_DEVICE = flags.DEFINE_string("device", "", "Device, e.g. /GPU:0 (default: TF's choice).")


def matmul_gflops(device: str) -> float:
    with tf.device(device or None):
        a = tf.random.normal([4096, 4096])
        f = tf.function(lambda a: tf.linalg.matmul(a, a))
        f(a).numpy()
        t0, n = time.perf_counter(), 3
        for _ in range(n):
            r = f(a)
        r.numpy()
    return 2 * 4096**3 * n / (time.perf_counter() - t0) / 1e9


def peak_memory_mb(device: str) -> float:
    if device.upper().startswith("/GPU"):
        return tf.config.experimental.get_memory_info(device.strip("/"))["peak"] / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def recipe(name: str, precision: str, xla: bool):
    from panns_keras import configs

    c = configs.get_config(f"audioset:{name}")
    c.train.batch_size = _BATCH.value
    c.train.precision = precision
    c.train.jit_compile = xla
    c.train.strategy = "default"
    c.data.train_files = "" if _DATA.value == "synthetic" else _DATA.value
    return c


def synthetic(config) -> tf.data.Dataset:
    n = 2 * int(config.train.batch_size)  # log-mel mixup: 2 x batch clips in
    wav = tf.random.stateless_normal([n, 320000], [0, 1], stddev=0.1)
    target = tf.cast(tf.random.stateless_uniform([n, 527], [0, 2]) < 0.01, tf.float32)
    batch = {"waveform": wav, "target": target}
    return tf.data.Dataset.from_tensors(batch).repeat()


def bench(name: str, precision: str, xla: bool, device: str) -> dict:
    import keras

    from panns_keras.data.pipeline import make_train_dataset
    from panns_keras.train import trainer

    config = recipe(name, precision, xla)
    config.train.fused_batchnorm = _FUSED.value
    from panns_keras.models import kernels

    kernels.set_fused_batchnorm(_FUSED.value)
    strategy = tf.distribute.get_strategy()
    if device:
        strategy = tf.distribute.OneDeviceStrategy(device)
    keras.mixed_precision.set_global_policy(precision)
    try:
        with strategy.scope():
            model = trainer.build_model_from_config(config)
            optimizer = trainer.make_optimizer(config.train)
            optimizer.build(model.trainable_variables)
            step = tf.Variable(0, dtype=tf.int64, trainable=False)
        batch = int(config.train.batch_size)
        train_fn, _ = trainer.make_step_fns(model, optimizer, step, strategy, config, batch,
                                            batch, config.data.mixup in ("in_model", "logmel"))

        def dataset(ctx):
            if _DATA.value == "synthetic":
                return synthetic(config)
            return make_train_dataset(config, ctx)

        it = iter(strategy.distribute_datasets_from_function(dataset))
        float(train_fn(it))  # trace + warm-up
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for _ in range(_STEPS.value):
            loss = train_fn(it)
        loss = float(loss)
        dt = (time.perf_counter() - t0) / _STEPS.value
        r1 = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    cpu = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / _STEPS.value
    cps = batch / dt
    return {"s/step": dt, "cpu s/step": cpu, "clips/s": cps, "loss": loss,
            "GFLOP/s": 3 * PAPER_FLOPS.get(name, float("nan")) * cps / 1e9,
            "peak MB": peak_memory_mb(device)}  # fmt: skip


def main(argv) -> None:
    del argv
    device = _DEVICE.value
    print(f"devices: {[d.name for d in tf.config.list_logical_devices()]}  data: {_DATA.value}")
    ceiling = matmul_gflops(device)
    print(f"matmul 4096^2 float32: {ceiling:.1f} GFLOP/s", flush=True)
    for name in _MODELS.value:
        for prec in _PREC.value:
            for x in _XLA.value:
                try:
                    r = bench(name, prec, x == "on", device)
                except Exception as e:
                    print(f"{name:13s} {prec:15s} xla={x:3s} FAILED: {type(e).__name__}: "
                          f"{str(e).splitlines()[0][:120]}")  # fmt: skip
                    continue
                vs = f" ({100 * r['GFLOP/s'] / ceiling:.0f}% of the float32 matmul ceiling)"
                print(f"{name:13s} {prec:15s} xla={x:3s} batch={_BATCH.value} "
                      f"{r['s/step']:7.2f} s/step (cpu {r['cpu s/step']:.2f}) "
                      f"{r['clips/s']:7.2f} clips/s {r['GFLOP/s']:8.1f} GFLOP/s "
                      f"peak {r['peak MB']:.0f} MB loss {r['loss']:.4f}{vs}",
                      flush=True)  # fmt: skip


if __name__ == "__main__":
    app.run(main)
