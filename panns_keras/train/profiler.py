"""The optional profiler trace of a training run: ``config.train.profile_steps`` and the
trace over those steps (TensorBoard's Profile tab), on the TensorFlow or the JAX backend."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path


def parse_profile_steps(value) -> tuple[int, int] | None:
    """``config.train.profile_steps``: ``"a,b"`` (or ``[a, b]``, or ``"a"`` for one step) ->
    (a, b), the 1-based steps a..b inclusive; empty -> None."""
    from panns_keras.errors import UserError

    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        steps = [int(str(p).strip()) for p in parts]
    except ValueError:
        steps = []
    if len(steps) == 1:
        steps = steps * 2
    if len(steps) != 2 or steps[0] < 1 or steps[1] < steps[0]:
        raise UserError(
            f"config.train.profile_steps: {value!r} is not 'START,STOP' with "
            "1 <= START <= STOP (steps, 1-based; empty = no trace)"
        )
    return steps[0], steps[1]


class Profiler:
    """A profiler trace over the training steps ``window`` (1-based, inclusive), written to
    ``logdir/plugins/profile/`` (TensorBoard's Profile tab): ``tf.profiler`` on the
    TensorFlow backend, ``jax.profiler`` on JAX. Wrap each step in ``with profiler.step(n)``
    (n: the step's 1-based number); each profiled step is marked as a step in the trace.
    """

    def __init__(
        self, logdir: str | os.PathLike, window, enabled: bool = True, backend: str | None = None
    ):
        self.logdir = Path(logdir)
        self.window = parse_profile_steps(window) if enabled else None
        if backend is None and self.window is not None:
            import keras

            backend = keras.backend.backend()
        self.backend = backend
        self.active = False

    def _start(self) -> None:
        self.logdir.mkdir(parents=True, exist_ok=True)
        if self.backend == "jax":
            import jax

            jax.profiler.start_trace(str(self.logdir))
        else:
            import tensorflow as tf

            tf.profiler.experimental.start(str(self.logdir))
        self.active = True

    def stop(self) -> None:
        """Ends the trace if one is running (also at the end of a run cut short)."""
        if not self.active:
            return
        self.active = False
        if self.backend == "jax":
            import jax

            jax.profiler.stop_trace()
        else:
            import tensorflow as tf

            tf.profiler.experimental.stop()

    @contextmanager
    def step(self, number: int):
        if self.window is None:
            yield
            return
        first, last = self.window
        if number == first or (first < number <= last and not self.active):  # (a resume)
            self._start()
        if not self.active:
            yield
            return
        if self.backend == "jax":
            import jax

            marker = jax.profiler.StepTraceAnnotation("train", step_num=number)
        else:
            import tensorflow as tf

            marker = tf.profiler.experimental.Trace("train", step_num=number, _r=1)
        with marker:
            yield
        if number >= last:
            self.stop()
