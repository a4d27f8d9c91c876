"""The TensorFlow side of the training step: ``GradientTape``, ``tf.function``, strategies.

The step itself is :func:`panns_keras.train.step.compute_loss`; this module only takes its
gradients, compiles it and spreads it over a ``tf.distribute`` strategy (one device,
``MirroredStrategy`` over GPUs or logical CPUs, ``MultiWorkerMirroredStrategy`` from
``TF_CONFIG``). Checkpoints are ``tf.train.Checkpoint``s holding the model, the optimizers,
the step, the best mAP and (one replica) the ``tf.data`` iterator, so a resume continues on
exactly the next batch.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from panns_keras.errors import UserError
from panns_keras.train import step as step_lib


# ---------------------------------------------------------------------------- strategy
def _num_tf_config_workers() -> int:
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG", "") or "{}").get("cluster", {})
    except json.JSONDecodeError as e:
        raise UserError(f"TF_CONFIG is not valid JSON: {e}") from None
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def make_strategy(kind: str = "auto") -> tf.distribute.Strategy:
    """auto: MultiWorkerMirrored when TF_CONFIG names several workers, Mirrored over all
    GPUs when there are several, else the default (one-device) strategy. ``mirrored`` on a
    machine without GPUs mirrors over the logical CPU devices."""
    if kind == "auto":
        if _num_tf_config_workers() > 1:
            kind = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            kind = "mirrored"
        else:
            kind = "default"
    if kind == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(
            cpus, cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief" or task_type is None:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


# ---------------------------------------------------------------------------- the step
def make_step_fn(
    model, groups, spec: step_lib.StepSpec, strategy=None, *, jit_compile=False, with_outputs=False
):
    """``step(batch, lam) -> loss`` (or ``(loss, clipwise)``), a ``tf.function``.

    ``batch``: ``{'waveform', 'target'}`` (per-replica values under a strategy, or plain
    tensors fed to every replica); ``lam``: the GLOBAL ``(2 * global_batch,)`` lambdas
    (:func:`~panns_keras.train.step.mixup_lambdas`) or None; replica r takes its slice.
    The loss is summed over replicas (the global mean); ``clipwise`` is gathered.
    Traced without AutoGraph (as Keras's own train step): the step has no Python control flow
    on tensors, and converting every layer's code took about a fifth of a Cnn-sized trace.
    """
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    per_replica_pairs = spec.global_batch // replicas
    variables = [v for _, vs in groups for v in vs]
    scale = any(isinstance(o, keras.optimizers.LossScaleOptimizer) for o, _ in groups)
    intermediates = spec.loss == "bce_logits"

    def call(waveform, lam):
        out = model(
            waveform, training=spec.training, mixup_lambda=lam, return_intermediates=intermediates
        )
        return out, None

    def forward_backward(waveform, target, lam, teacher=None):
        with tf.GradientTape() as tape:
            loss, parts, clipwise, _ = step_lib.compute_losses(
                call, waveform, target, lam, spec, teacher
            )
            scaled = groups[0][0].scale_loss(loss) if scale else loss
        return loss, parts, tape.gradient(scaled, variables), clipwise

    if jit_compile:
        forward_backward = tf.function(forward_backward, jit_compile=True, autograph=False)

    def replica_step(batch, lam):
        if lam is not None:
            rid = tf.distribute.get_replica_context().replica_id_in_sync_group
            lam = lam[rid * 2 * per_replica_pairs : (rid + 1) * 2 * per_replica_pairs]
        teacher = batch["teacher_logits"] if spec.distill else None
        loss, parts, grads, clipwise = forward_backward(
            batch["waveform"], batch["target"], lam, teacher
        )
        start = 0
        for opt, vs in groups:
            opt.apply_gradients(zip(grads[start : start + len(vs)], vs))
            start += len(vs)
        return {"loss": loss, **parts}, clipwise

    @tf.function(autograph=False)
    def run(batch, lam=None):
        losses, clipwise = strategy.run(replica_step, args=(batch, lam))
        losses = {
            k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in losses.items()
        }
        # A distilling step returns {'loss', 'label_loss', 'teacher_loss'} (step.split_losses).
        loss = losses if spec.distill else losses["loss"]
        if with_outputs:
            return loss, strategy.gather(clipwise, axis=0)
        return loss

    return run


# ---------------------------------------------------------------------------- the engine
class TFEngine:
    """Builds the model and optimizers under a strategy, feeds the step, keeps checkpoints
    (the interface: ``backends.engine.Engine``).

    Args:
        config: the training config.
        workdir: the run's folder (``checkpoints/`` go there).
    """

    backend = "tensorflow"

    def __init__(self, config, workdir: Path):
        self.config = config
        t = config.train
        if t.deterministic_ops:
            tf.config.experimental.enable_op_determinism()
        self.strategy = make_strategy(t.strategy)
        self.chief = is_chief(self.strategy)
        self.replicas = self.strategy.num_replicas_in_sync
        self.spec = step_lib.StepSpec.from_config(config)
        if self.spec.global_batch % self.replicas:
            raise UserError(
                f"config.train.batch_size: {self.spec.global_batch} is not "
                f"divisible by {self.replicas} replicas"
            )
        self.workdir = workdir
        self._scratch = None
        self.loss_parts: dict = {}  # the last step's label / teacher losses when distilling

    def device_kind(self) -> str:
        return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"

    def build(self, build_fn):
        """``build_fn() -> (model, groups)`` runs inside the strategy's scope."""
        with self.strategy.scope():
            self.model, self.groups = build_fn()
            self._step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self._best = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="best_map")

    # -- input
    def start(self, make_dataset, synthetic: bool):
        """Restores the newest checkpoint (if any) and positions the input after it.

        ``make_dataset(seed_offset, input_context)`` builds the tf.data pipeline.
        """
        t = self.config.train
        ckpt_dir = self.workdir / "checkpoints"
        if not self.chief:  # every worker writes (collectives); only the chief's copy is kept
            self._scratch = Path(tempfile.mkdtemp(prefix="panns_worker_"))
            ckpt_dir = self._scratch / "checkpoints"
        track = {"model": self.model, "step": self._step, "best_map": self._best}
        for i, (opt, _) in enumerate(self.groups):
            # Names of the single-optimizer layout (older checkpoints restore unchanged).
            name = "optimizer" if i == len(self.groups) - 1 else "base_optimizer"
            track[name] = opt

        def distribute(seed_offset=0, skip_steps=0):
            if synthetic:
                return iter(
                    self.strategy.experimental_distribute_dataset(
                        _synthetic_dataset(self.config, self.spec)
                    )
                )

            def fn(ctx):
                ds = make_dataset(seed_offset, ctx)
                if skip_steps:  # batches this pipeline fed per step x steps already taken
                    ds = ds.skip(skip_steps * max(1, self.replicas // ctx.num_input_pipelines))
                return ds

            return iter(self.strategy.distribute_datasets_from_function(fn))

        # Data position on resume: one replica -> the tf.data iterator is checkpointed with
        # the model; several replicas (DistributedIterator is not trackable) -> the stream is
        # rebuilt and the consumed batches skipped (exact, costs a re-read); 'reseed' -> a
        # fresh stream with a new seed (cheap, not bit-exact).
        by_iterator = t.checkpoint_input == "iterator" and self.replicas == 1 and not synthetic
        if by_iterator:
            self.iterator = distribute()
            track["iterator"] = self.iterator
        self._ckpt = tf.train.Checkpoint(**track)
        self._manager = tf.train.CheckpointManager(
            self._ckpt, str(ckpt_dir), max_to_keep=max(1, int(t.keep_checkpoints))
        )
        latest = tf.train.latest_checkpoint(str(self.workdir / "checkpoints"))
        if latest:
            self._ckpt.restore(latest).assert_existing_objects_matched()
            logging.info("resumed from %s at step %d", latest, self.step)
        if t.checkpoint_input == "reseed" and not synthetic:
            self.iterator = distribute(seed_offset=self.step * 1_000_003)
        elif not by_iterator:
            self.iterator = distribute(skip_steps=self.step)
        self._run = make_step_fn(
            self.model, self.groups, self.spec, self.strategy, jit_compile=bool(t.jit_compile)
        )
        return self.step

    # -- state
    @property
    def step(self) -> int:
        return int(self._step.numpy())

    @property
    def best_map(self) -> float:
        return float(self._best.numpy())

    @best_map.setter
    def best_map(self, value: float) -> None:
        self._best.assign(value)

    def learning_rate(self) -> float:
        return float(np.asarray(self.groups[-1][0].learning_rate))

    # -- the loop's calls
    def train_step(self, lam: np.ndarray | None, keep_batch: bool = False):
        """One step on the next batch; ``(loss, batch or None)``; the loss stays lazy."""
        batch = next(self.iterator)
        loss, self.loss_parts = step_lib.split_losses(
            self._run(batch, None if lam is None else tf.constant(lam))
        )
        self._step.assign_add(1)
        local = None
        if keep_batch:
            local = {
                k: v.numpy() for k, v in self.strategy.experimental_local_results(batch)[0].items()
            }
        return loss, local

    def sync(self) -> None:
        """Nothing to do: the step updates the Keras variables in place."""

    def predict_fn(self):
        model = self.model

        @tf.function(reduce_retracing=True, autograph=False)
        def predict(waveform):
            return model(waveform, training=False)["clipwise_output"]

        return predict

    def save_checkpoint(self) -> None:
        self._manager.save(checkpoint_number=self.step)

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


def _synthetic_dataset(config, spec: step_lib.StepSpec) -> tf.data.Dataset:
    """One fixed random batch, repeated: measures the step without reading data."""
    n = spec.clips_per_step
    samples = int(config.data.clip_samples)
    k = int(config.data.num_classes)
    gen = np.random.default_rng(int(config.seed))
    wav = (0.1 * gen.standard_normal((n, samples))).astype(np.float32)
    target = (gen.random((n, k)) < 0.02).astype(np.float32)
    batch = {"waveform": wav, "target": target}
    if spec.distill:  # random teacher logits: the distilling step's cost
        batch["teacher_logits"] = (2.0 * gen.standard_normal((n, k)) - 3.0).astype(np.float32)
    return tf.data.Dataset.from_tensors(batch).repeat()
