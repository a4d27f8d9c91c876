"""The JAX side of the training step: ``jax.value_and_grad``, ``jax.jit``, DataParallel.

The step itself is :func:`panns_keras.train.step.compute_loss`, run through the model's
``stateless_call`` (BatchNorm statistics and random-layer seeds come back as new
non-trainable values) and the optimizers' ``stateless_apply``. The state (trainable,
non-trainable and optimizer values) lives in the engine between steps and is written back
to the Keras variables before an evaluation, an export or a checkpoint.

Devices: with more than one local device (and ``config.train.strategy`` not ``default``)
``keras.distribution.DataParallel`` replicates the variables and splits each global batch
over the devices; the step sees the whole global batch, so BatchNorm statistics are those of
the global batch (synchronised, as ``train.sync_batchnorm`` on TensorFlow).

Checkpoints: ``checkpoints/ckpt-<step>.npz`` with every model and optimizer value, the step
and the best mAP; a resume rebuilds the (deterministic) input pipeline and skips the
batches already consumed, so it continues on exactly the next batch.
"""

from __future__ import annotations

from pathlib import Path

import jax
import keras
import numpy as np
from absl import logging

from panns_keras.errors import UserError
from panns_keras.train import step as step_lib
from panns_keras.train.checkpoints import NpzCheckpoints


def make_step_fn(model, groups, spec: step_lib.StepSpec, *, with_outputs: bool = False):
    """``step(state, waveform, target, lam, teacher=None) -> (state, loss[, clipwise])``,
    jitted. With ``spec.distill`` the loss is ``{'loss', 'label_loss', 'teacher_loss'}``
    (``teacher``: the batch's teacher logits; see ``step.split_losses``).

    ``state`` is ``(trainable, non_trainable, optimizer_values)``: lists of arrays in the
    order of ``model.trainable_variables``, ``model.non_trainable_variables`` and, per group
    of ``groups``, its optimizer's ``variables`` (see :func:`initial_state`).
    """
    position = {id(v): i for i, v in enumerate(model.trainable_variables)}
    index = [[position[id(v)] for v in vs] for _, vs in groups]
    intermediates = spec.loss == "bce_logits"

    def loss_fn(trainable, non_trainable, waveform, target, lam, teacher):
        def call(x, mix):
            return model.stateless_call(
                trainable,
                non_trainable,
                x,
                training=spec.training,
                mixup_lambda=mix,
                return_intermediates=intermediates,
            )

        loss, parts, clipwise, new_non_trainable = step_lib.compute_losses(
            call, waveform, target, lam, spec, teacher
        )
        return loss, (clipwise, new_non_trainable, parts)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def step(state, waveform, target, lam, teacher=None):
        trainable, non_trainable, opt_values = state
        (loss, (clipwise, non_trainable, parts)), grads = grad_fn(
            trainable, non_trainable, waveform, target, lam, teacher
        )
        if spec.distill:
            loss = {"loss": loss, **parts}
        trainable = list(trainable)
        new_opt_values = []
        for (opt, _), idx, values in zip(groups, index, opt_values):
            new_vars, values = opt.stateless_apply(
                values, [grads[i] for i in idx], [trainable[i] for i in idx]
            )
            for i, v in zip(idx, new_vars):
                trainable[i] = v
            new_opt_values.append(values)
        state = (trainable, non_trainable, new_opt_values)
        return (state, loss, clipwise) if with_outputs else (state, loss)

    # No buffer donation: the Keras variables may hold the previous state's arrays (after a
    # write-back), and an evaluation or summary between steps reads them.
    return jax.jit(step)


def predict_function(model, values=None, put=None):
    """``waveform -> clipwise_output`` (inference mode), jitted.

    ``values() -> (trainable, non_trainable)`` gives the arrays to run with at each call (by
    default the Keras variables' current values); ``put`` places the input on the devices.
    """

    @jax.jit
    def _predict(trainable, non_trainable, x):
        out, _ = model.stateless_call(trainable, non_trainable, x, training=False)
        return out["clipwise_output"]

    def current():
        return (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
        )

    values = values or current
    put = put or jax.numpy.asarray

    def predict(waveform):
        trainable, non_trainable = values()
        return _predict(trainable, non_trainable, put(np.asarray(waveform)))

    return predict


def initial_state(model, groups):
    """The step's state from the Keras variables (see :func:`make_step_fn`)."""
    return (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [[v.value for v in opt.variables] for opt, _ in groups],
    )


def write_back(model, groups, state) -> None:
    """Assigns the step's state to the Keras variables."""
    trainable, non_trainable, opt_values = state
    for v, x in zip(model.trainable_variables, trainable):
        v.assign(x)
    for v, x in zip(model.non_trainable_variables, non_trainable):
        v.assign(x)
    for (opt, _), values in zip(groups, opt_values):
        for v, x in zip(opt.variables, values):
            v.assign(x)


class JaxEngine:
    """Builds the model and optimizers, feeds the jitted step, keeps ``.npz`` checkpoints
    (the interface: ``backends.engine.Engine``).

    Args:
        config: the training config.
        workdir: the run's folder (``checkpoints/`` go there).
    """

    backend = "jax"

    def __init__(self, config, workdir: Path):
        self.config = config
        t = config.train
        if t.precision == "mixed_float16":
            raise UserError(
                "config.train.precision: mixed_float16 (loss scaling) is "
                "TensorFlow only; use mixed_bfloat16 or float32 on JAX"
            )
        devices = jax.local_devices()
        self.distribution = None
        if len(devices) > 1 and t.strategy != "default":
            self.distribution = keras.distribution.DataParallel(devices=devices)
        self.replicas = len(devices) if self.distribution else 1
        self.chief = jax.process_index() == 0
        self.spec = step_lib.StepSpec.from_config(config)
        if self.spec.global_batch % self.replicas:
            raise UserError(
                f"config.train.batch_size: {self.spec.global_batch} is not "
                f"divisible by {self.replicas} devices"
            )
        self.workdir = workdir
        self._ckpts = NpzCheckpoints(workdir / "checkpoints", int(t.keep_checkpoints))
        self._step = 0
        self.best_map = -1.0
        self._state = None
        self.loss_parts: dict = {}  # the last step's label / teacher losses when distilling

    def device_kind(self) -> str:
        return jax.default_backend()

    def build(self, build_fn):
        """``build_fn() -> (model, groups)``; under DataParallel when there are devices."""
        if self.distribution is not None:
            with self.distribution.scope():
                self.model, self.groups = build_fn()
        else:
            self.model, self.groups = build_fn()
        self._run = make_step_fn(self.model, self.groups, self.spec)

    # -- input
    def start(self, make_dataset, synthetic: bool):
        """Restores the newest checkpoint (if any) and positions the input after it.

        ``make_dataset(seed_offset, input_context)`` builds the tf.data pipeline.
        """
        latest = self._ckpts.latest()
        if latest is not None:
            self._restore(NpzCheckpoints.load(latest))
            logging.info("resumed from %s at step %d", latest, self._step)
        self._state = initial_state(self.model, self.groups)
        if synthetic:
            self._batches = synthetic_batches(self.config, self.spec)
        else:
            reseed = self.config.train.checkpoint_input == "reseed"
            ds = make_dataset(self._step * 1_000_003 if reseed else 0, None)
            if self._step and not reseed:
                ds = ds.skip(self._step)
            self._batches = ds.as_numpy_iterator()
        return self._step

    def _put(self, x):
        if self.distribution is None:
            return jax.numpy.asarray(x)
        layout = self.distribution.get_data_layout(x.shape)
        return keras.distribution.distribute_tensor(x, layout)

    # -- state
    @property
    def step(self) -> int:
        return self._step

    def learning_rate(self) -> float:
        self.sync()  # the optimizer's iterations, which its schedule reads
        return float(np.asarray(self.groups[-1][0].learning_rate))

    # -- the loop's calls
    def train_step(self, lam: np.ndarray | None, keep_batch: bool = False):
        """One step on the next batch; ``(loss, batch or None)``; the loss stays lazy."""
        batch = next(self._batches)
        wav, target = self._put(batch["waveform"]), self._put(batch["target"])
        mix = None if lam is None else jax.numpy.asarray(lam)
        teacher = self._put(batch["teacher_logits"]) if self.spec.distill else None
        self._state, out = self._run(self._state, wav, target, mix, teacher)
        loss, self.loss_parts = step_lib.split_losses(out)
        self._step += 1
        local = None
        if keep_batch:
            local = {k: np.asarray(v) for k, v in batch.items()}
        return loss, local

    def sync(self) -> None:
        """Writes the step's state into the Keras variables (before eval / export / save)."""
        if self._state is not None:
            write_back(self.model, self.groups, self._state)

    def predict_fn(self):
        return predict_function(self.model, lambda: self._state[:2], self._put)

    def save_checkpoint(self) -> None:
        self.sync()
        # By position (the model's variable order is fixed by its config); paths are not
        # stable across processes (seed generators are numbered per session).
        arrays = {f"model/{i}": np.asarray(v.value) for i, v in enumerate(self.model.variables)}
        for g, (opt, _) in enumerate(self.groups):
            for j, v in enumerate(opt.variables):
                arrays[f"opt{g}/{j}"] = np.asarray(v.value)
        arrays["step"] = np.asarray(self._step, np.int64)
        arrays["best_map"] = np.asarray(self.best_map, np.float64)
        self._ckpts.save(self._step, arrays)

    def _restore(self, arrays) -> None:
        variables = self.model.variables
        saved = sum(1 for k in arrays if k.startswith("model/"))
        shapes_ok = saved == len(variables) and all(
            tuple(arrays[f"model/{i}"].shape) == tuple(v.shape) for i, v in enumerate(variables)
        )
        if not shapes_ok:
            raise UserError(
                f"{self._ckpts.latest()}: checkpoint does not match the model of "
                f"config.json ({saved} saved values, {len(variables)} "
                "variables); use a new --out for another model"
            )
        for i, v in enumerate(variables):
            v.assign(arrays[f"model/{i}"])
        for g, (opt, _) in enumerate(self.groups):
            for j, v in enumerate(opt.variables):
                v.assign(arrays[f"opt{g}/{j}"])
        self._step = int(arrays["step"])
        self.best_map = float(arrays["best_map"])

    def close(self) -> None:
        self.sync()


def synthetic_batches(config, spec: step_lib.StepSpec):
    """One random batch made on the device, fed every step (measures the step, not data)."""
    n = spec.clips_per_step
    key = jax.random.PRNGKey(int(config.seed))
    k1, k2 = jax.random.split(key)
    k = int(config.data.num_classes)
    wav = 0.1 * jax.random.normal(k1, (n, int(config.data.clip_samples)), "float32")
    target = (jax.random.uniform(k2, (n, k)) < 0.02).astype("float32")
    batch = {"waveform": wav, "target": target}
    if spec.distill:  # random teacher logits: the distilling step's cost
        k3 = jax.random.fold_in(key, 3)
        batch["teacher_logits"] = 2.0 * jax.random.normal(k3, (n, k), "float32") - 3.0
    while True:
        yield batch
