"""The optimizer and its learning-rate schedule (one concern): :func:`make_optimizer`.

Adam in PyTorch's form is the optimizer of the PANNs reference recipe.

``keras.optimizers.Adam`` and ``torch.optim.Adam`` differ in where epsilon goes:

    keras: p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
    torch: p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

so Keras's epsilon acts like torch's times ``1 / sqrt(1 - b2^t)`` (31.6 at step 1): with
eps=1e-8 a Keras run is a different recipe (the training goldens catch it, mutant d2 of
``tests/assets/golden/train``). :class:`TorchAdam` is the torch update, element for element
(``m = m + (1 - b1)(g - m)``, ``v = b2 v + (1 - b2) g^2``, ``vmax = max(vmax, v)``), with
the step constants computed in float64 and rounded once, as torch does with its Python
scalars. It keeps Keras's slot variables (``momentum``, ``velocity``, ``velocity_hat``), so
checkpoints written with ``keras.optimizers.Adam`` restore into it.

Weight decay: ``decoupled=False`` is torch ``Adam``'s L2 term (``g += wd * p``);
``decoupled=True`` is torch ``AdamW`` (``p *= 1 - lr * wd`` before the step, which is what
the Keras base class applies).
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops


def _float64_available() -> bool:
    if keras.backend.backend() != "jax":
        return True
    import jax

    return bool(jax.config.read("jax_enable_x64"))


def _step_constants(t, learning_rate, b1: float, b2: float):
    """``lr / (1 - b1^t)`` and ``sqrt(1 - b2^t)`` as torch computes them (Python doubles,
    rounded once). In float64 where the backend has it; else (JAX without x64) in float32
    through ``expm1(t * log(b))``, within a few float32 ulps of the float64 values (the
    plain float32 ``1 - 0.999**t`` is off by 1.3e-5 relative at t = 1: 0.999 itself rounds)."""
    if _float64_available():
        # Python floats enter as float64 tensors (ops.cast(0.999, "float64") would round
        # through float32 first: sqrt(1 - b2) off by 6e-6, a 6e-6 smaller first step).
        t = ops.cast(t, "float64")
        bias1 = 1.0 - ops.power(ops.convert_to_tensor(b1, dtype="float64"), t)
        bias2_sqrt = ops.sqrt(1.0 - ops.power(ops.convert_to_tensor(b2, dtype="float64"), t))
        return ops.cast(learning_rate, "float64") / bias1, bias2_sqrt
    t = ops.cast(t, "float32")
    bias1 = -ops.expm1(t * math.log(b1))
    bias2_sqrt = ops.sqrt(-ops.expm1(t * math.log(b2)))
    return ops.cast(learning_rate, "float32") / bias1, bias2_sqrt


class _StepConstants:
    """One update's constants (a plain object: not tracked as optimizer state)."""

    __slots__ = ("dtype", "learning_rate", "values")

    def __init__(self, learning_rate=None, dtype=None, values=()):
        self.learning_rate, self.dtype, self.values = learning_rate, dtype, values


@keras.saving.register_keras_serializable(package="panns_keras")
class TorchAdam(keras.optimizers.Adam):
    """``torch.optim.Adam`` / ``AdamW`` update on Keras's Adam state (see module doc)."""

    def __init__(
        self,
        learning_rate=1e-3,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        amsgrad=True,
        weight_decay=None,
        decoupled=False,
        name="torch_adam",
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=amsgrad,
            weight_decay=weight_decay if decoupled else None,
            name=name,
            **kwargs,
        )
        self.l2 = 0.0 if decoupled else float(weight_decay or 0.0)
        self.decoupled = bool(decoupled)
        self._l2_config = weight_decay

    def apply(self, grads, trainable_variables=None):
        # The step constants are the same for every variable of one update: computed at the
        # first variable, reused by the others (a traced step holds them once, not per variable).
        self._constants = _StepConstants()
        return super().apply(grads, trainable_variables)

    def _update_constants(self, learning_rate, dtype):
        """``(step_size, sqrt(1 - b2^t), 1 - b1, b2, 1 - b2, eps)`` in ``dtype``."""
        c = getattr(self, "_constants", None)
        if c is None or c.learning_rate is not learning_rate or c.dtype != dtype:
            b1, b2 = float(self.beta_1), float(self.beta_2)
            step_size, bias2_sqrt = _step_constants(self.iterations + 1, learning_rate, b1, b2)
            values = (step_size, bias2_sqrt, 1.0 - b1, b2, 1.0 - b2, self.epsilon)
            c = self._constants = _StepConstants(
                learning_rate, dtype, tuple(ops.cast(x, dtype) for x in values)
            )
        return c.values

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        g = ops.cast(gradient, dtype)
        if self.l2:
            g = g + ops.cast(self.l2, dtype) * variable
        step_size, bias2_sqrt, one_minus_b1, b2, one_minus_b2, eps = self._update_constants(
            learning_rate, dtype
        )
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign(m, m + one_minus_b1 * (g - m))
        self.assign(v, v * b2 + one_minus_b2 * g * g)
        if self.amsgrad:
            v_hat = self._velocity_hats[index]
            self.assign(v_hat, ops.maximum(v_hat, v))
            v = v_hat
        denom = ops.sqrt(v) / bias2_sqrt + eps
        self.assign_sub(variable, step_size * (m / denom))

    def get_config(self):
        config = super().get_config()
        config["weight_decay"] = self._l2_config
        config["decoupled"] = self.decoupled
        return config


@keras.saving.register_keras_serializable(package="panns_keras")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Constant or cosine decay (to ``min_ratio * base``) after a linear warm-up."""

    def __init__(
        self,
        base: float,
        total_steps: int,
        warmup_steps: int = 0,
        kind: str = "constant",
        min_ratio: float = 0.0,
    ):
        self.base, self.total_steps, self.warmup_steps = base, total_steps, warmup_steps
        self.kind, self.min_ratio = kind, min_ratio

    def __call__(self, step):
        step = ops.cast(step, "float32")
        lr = ops.convert_to_tensor(self.base, dtype="float32")
        if self.kind == "cosine":
            span = float(max(1, self.total_steps - self.warmup_steps))
            progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            cos = 0.5 * (1.0 + ops.cos(math.pi * progress))
            lr = lr * (self.min_ratio + (1.0 - self.min_ratio) * cos)
        if self.warmup_steps > 0:
            lr = lr * ops.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
        return lr

    def get_config(self):
        return {
            "base": self.base,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "kind": self.kind,
            "min_ratio": self.min_ratio,
        }


def make_optimizer(t, lr_scale: float = 1.0) -> keras.optimizers.Optimizer:
    """The optimizer of ``t`` (the train config); its learning rate times ``lr_scale``."""
    lr = WarmupSchedule(
        float(t.learning_rate) * lr_scale,
        int(t.num_steps),
        int(t.warmup_steps),
        t.schedule,
        float(t.min_lr_ratio),
    )
    kw: dict[str, Any] = {"learning_rate": lr}
    if t.clipnorm:
        kw["clipnorm"] = float(t.clipnorm)
    # Adam in torch's form (epsilon outside the bias correction; Keras's form is another
    # recipe): "adam" is torch Adam (L2 weight decay), "adamw" torch AdamW (decoupled).
    if t.optimizer in ("adam", "adamw"):
        opt = TorchAdam(
            beta_1=float(t.beta_1),
            beta_2=float(t.beta_2),
            epsilon=float(t.epsilon),
            amsgrad=bool(t.amsgrad),
            weight_decay=float(t.weight_decay) or None,
            decoupled=t.optimizer == "adamw",
            **kw,
        )
    else:
        opt = keras.optimizers.SGD(
            momentum=float(t.momentum), weight_decay=float(t.weight_decay) or None, **kw
        )
    if t.precision == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt
