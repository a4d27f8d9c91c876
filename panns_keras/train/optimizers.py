"""Adam in PyTorch's form, the optimizer of the PANNs reference recipe.

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

import keras
from keras import ops


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

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        b1, b2 = float(self.beta_1), float(self.beta_2)
        g = ops.cast(gradient, dtype)
        if self.l2:
            g = g + ops.cast(self.l2, dtype) * variable
        # Python floats enter as float64 tensors (ops.cast(0.999, "float64") would round
        # through float32 first: sqrt(1 - b2) off by 6e-6, a 6e-6 smaller first step).
        t = ops.cast(self.iterations + 1, "float64")
        bias1 = 1.0 - ops.power(ops.convert_to_tensor(b1, dtype="float64"), t)
        bias2_sqrt = ops.sqrt(1.0 - ops.power(ops.convert_to_tensor(b2, dtype="float64"), t))
        step_size = ops.cast(ops.cast(learning_rate, "float64") / bias1, dtype)
        bias2_sqrt = ops.cast(bias2_sqrt, dtype)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign(m, m + ops.cast(1.0 - b1, dtype) * (g - m))
        self.assign(v, v * ops.cast(b2, dtype) + ops.cast(1.0 - b2, dtype) * g * g)
        if self.amsgrad:
            v_hat = self._velocity_hats[index]
            self.assign(v_hat, ops.maximum(v_hat, v))
            v = v_hat
        denom = ops.sqrt(v) / bias2_sqrt + ops.cast(self.epsilon, dtype)
        self.assign_sub(variable, step_size * (m / denom))

    def get_config(self):
        config = super().get_config()
        config["weight_decay"] = self._l2_config
        config["decoupled"] = self.decoupled
        return config
