"""One convolution layer's time on the Keras backend in use: the package's ``Conv2D`` (which
runs im2col where its rule says, ``panns_keras/models/conv.py``) against the plain
convolution (the same layer inside ``plain_convolutions()``), forward and forward + gradients.

KERAS_BACKEND=jax python benchmarks/conv_layers.py [--shapes=32x6x4x256x512x5,...] [--reps=3]

A shape is ``NxHxWxCINxCOUTxK`` (batch, map height and width, channels in and out, kernel);
the defaults are the four 5x5 layers of the demo's Cnn6 (8 kHz, 32 mel bins, 1 s clips, batch
32 after mixup). Each line: median seconds over ``--reps`` calls after one compiling call,
GFLOP/s by 2 x N x H x W x K^2 x CIN x COUT per forward (x 3 with gradients), the path the
package's layer took, and the CPU's vector features.
"""

from __future__ import annotations

import statistics
import time

import keras
import numpy as np
from absl import app, flags
from bench_common import cpu_description

from panns_keras.models import conv

_SHAPES = flags.DEFINE_list(
    "shapes",
    ["32x51x32x1x64x5", "32x25x16x64x128x5", "32x12x8x128x256x5", "32x6x4x256x512x5"],
    "NxHxWxCINxCOUTxK per layer.",
)
_REPS = flags.DEFINE_integer("reps", 3, "Timed calls per configuration.", lower_bound=1)


def compiled(layer, grads: bool):
    """``x -> output`` (or its gradients) compiled the backend's way, tracing on first call."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def fwd(kernel, x):
            return layer.stateless_call([kernel], [], x)[0]

        if grads:
            fn = jax.jit(jax.grad(lambda k, x: (fwd(k, x) ** 2).sum(), argnums=(0, 1)))
        else:
            fn = jax.jit(fwd)
        return lambda x: jax.block_until_ready(fn(layer.kernel.value, x))
    import tensorflow as tf

    @tf.function
    def fn(x):
        if not grads:
            return layer(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) ** 2)
        return tape.gradient(loss, [layer.kernel, x])

    return lambda x: [np.asarray(t) for t in tf.nest.flatten(fn(x))]


def seconds(call, x) -> float:
    call(x)
    times = []
    for _ in range(_REPS.value):
        t0 = time.perf_counter()
        call(x)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv) -> None:
    del argv
    print(f"CPU: {cpu_description()}; Keras backend {keras.backend.backend()}", flush=True)
    for shape in _SHAPES.value:
        n, h, w, cin, cout, k = (int(v) for v in shape.split("x"))
        x = np.random.default_rng(0).standard_normal((n, h, w, cin)).astype("float32")
        layer = conv.Conv2D(cout, k, padding="same", use_bias=False)
        layer.build((None, None, w, cin))
        im2col = layer.uses_im2col(x)
        flops = 2 * n * h * w * k * k * cin * cout
        for grads in (False, True):
            plain_s = None
            with conv.plain_convolutions():
                plain_s = seconds(compiled(layer, grads), x)
            pkg_s = seconds(compiled(layer, grads), x)
            f = flops * (3 if grads else 1) / 1e9
            print(
                f"{shape:20s} {'fwd+grad' if grads else 'forward':8s}  plain {plain_s:8.4f} s "
                f"({f / plain_s:6.1f} GFLOP/s)  package {pkg_s:8.4f} s ({f / pkg_s:6.1f} "
                f"GFLOP/s, {'im2col' if im2col else 'convolution'})",
                flush=True,
            )


if __name__ == "__main__":
    app.run(main)
