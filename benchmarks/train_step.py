"""Training throughput (clips/s), GFLOP/s and peak memory per model / precision / XLA.

python benchmarks/train_step.py --models=cnn14 --batch_size=8 --steps=3
  [--precisions=float32,mixed_bfloat16] [--xla=off,on] [--data=synthetic|'train/*.tfrecord']
  [--device=/CPU:0|/GPU:0]

GFLOP/s = 3 x forward FLOPs (paper figures per 10 s clip at 32 kHz) x clips/s, printed beside
a 4096x4096 float32 matmul measured in the same run. Peak memory: GPU allocator peak, or the
process's peak RSS on CPU. Real data goes through make_train_dataset with prefetch to device.
"""

from __future__ import annotations

import resource
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

PAPER_FLOPS = {"cnn14": 42.22e9, "cnn6": 21.986e9, "mobilenet_v1": 3.614e9}

_MODELS = flags.DEFINE_list("models", ["cnn14", "cnn6", "mobilenet_v1"], "Models.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Clips per step (after mixup).")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps (after one warm-up step).")
_PREC = flags.DEFINE_list("precisions", ["float32", "mixed_bfloat16"], "Keras dtype policies.")
_XLA = flags.DEFINE_list("xla", ["off", "on"], "jit_compile settings.")
_DATA = flags.DEFINE_string("data", "synthetic", "'synthetic' or a TFRecord glob (32 kHz 10 s).")
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


def batches(batch: int, device: str):
    if _DATA.value == "synthetic":
        wav = tf.random.normal([2 * batch, 320000], stddev=0.1)
        tgt = tf.cast(tf.random.uniform([2 * batch, 527]) < 0.01, tf.float32)
        while True:
            yield {"waveform": wav, "target": tgt}
    from panns_keras.data.config import default_config
    from panns_keras.data.pipeline import make_train_dataset

    c = default_config()
    c.data.train_files, c.train.batch_size = _DATA.value, batch
    ds = make_train_dataset(c)
    if device:
        ds = ds.apply(tf.data.experimental.prefetch_to_device(device))
    yield from ds


def bench(name: str, precision: str, xla: bool, device: str) -> dict:
    import keras

    from panns_keras import build_model
    from panns_keras.data.mixup import do_mixup, sample_mixup_lambda

    keras.mixed_precision.set_global_policy(precision)
    with tf.device(device or None):
        model = build_model(name, seed=0)
        opt = keras.optimizers.Adam(1e-3, amsgrad=True)
        opt.build(model.trainable_variables)

        def grads(wav, tgt, lam):
            with tf.GradientTape() as tape:
                p = model(wav, training=True, mixup_lambda=lam)["clipwise_output"]
                loss = tf.reduce_mean(keras.losses.binary_crossentropy(tgt, p))
            return loss, tape.gradient(loss, model.trainable_variables)

        grads_fn = tf.function(grads, jit_compile=xla)

        @tf.function
        def step(batch, i):
            lam = sample_mixup_lambda(tf.shape(batch["waveform"])[0] // 2, 1.0, [0, i])
            loss, g = grads_fn(batch["waveform"], do_mixup(batch["target"], lam), lam)
            opt.apply_gradients(zip(g, model.trainable_variables))
            return loss

        it = batches(_BATCH.value, device)
        step(next(it), tf.constant(0, tf.int64)).numpy()
        t0 = time.perf_counter()
        for i in range(_STEPS.value):
            loss = step(next(it), tf.constant(i + 1, tf.int64))
        loss.numpy()
        dt = (time.perf_counter() - t0) / _STEPS.value
    keras.mixed_precision.set_global_policy("float32")
    cps = _BATCH.value / dt
    return {"s/step": dt, "clips/s": cps, "GFLOP/s": 3 * PAPER_FLOPS[name] * cps / 1e9,
            "peak MB": peak_memory_mb(device)}  # fmt: skip


def main(argv) -> None:
    del argv
    device = _DEVICE.value
    print(f"devices: {[d.name for d in tf.config.list_logical_devices()]}  data: {_DATA.value}")
    print(f"matmul 4096^2 float32: {matmul_gflops(device):.1f} GFLOP/s")
    for name in _MODELS.value:
        for prec in _PREC.value:
            for x in _XLA.value:
                try:
                    r = bench(name, prec, x == "on", device)
                except Exception as e:
                    print(f"{name:13s} {prec:15s} xla={x:3s} FAILED: {type(e).__name__}: "
                          f"{str(e).splitlines()[0][:120]}")  # fmt: skip
                    continue
                print(f"{name:13s} {prec:15s} xla={x:3s} batch={_BATCH.value} "
                      f"{r['s/step']:7.2f} s/step {r['clips/s']:7.2f} clips/s "
                      f"{r['GFLOP/s']:8.1f} GFLOP/s peak {r['peak MB']:.0f} MB",
                      flush=True)  # fmt: skip
    np.set_printoptions()


if __name__ == "__main__":
    app.run(main)
