"""Distributed training loop: a custom ``tf.function`` step under a ``tf.distribute`` strategy.

Why a custom loop and not ``model.fit``: the step needs (a) in-graph log-mel mixup with a
lambda per pair that is a pure function of (seed, step, global pair index), so any number of
replicas reproduces the single-device batch; (b) the reference's BCE on probabilities averaged
over the GLOBAL batch; (c) the ``tf.data`` iterator inside the same ``tf.train.Checkpoint`` as
model and optimizer for exact resumption; (d) checkpoint / SIGTERM / best-model logic that does
not fit ``fit``'s callback ordering. Keras still provides the model, optimizer, loss scaling.

Layout of ``workdir``:
  config.json          the resolved config
  checkpoints/         ckpt-<step>.* (newest ``keep_checkpoints``), written by CheckpointManager
  best/                model directory of the best eval mAP (``load_model``-able) + metrics
  model/               model directory of the last step
  train/, eval/        TensorBoard event files
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from panns_keras.data import formats
from panns_keras.data import mixup as mixup_lib
from panns_keras.errors import UserError
from panns_keras.models import kernels
from panns_keras.progress import Progress
from panns_keras.train import config as config_lib
from panns_keras.train import evaluation, losses, optimizers

_MIXUP_SALT = 0x6D6978  # "mix"


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
        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
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


# ---------------------------------------------------------------------------- pieces
@keras.saving.register_keras_serializable(package="panns_keras")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Constant or cosine decay (to ``min_ratio * base``) after a linear warm-up."""

    def __init__(self, base: float, total_steps: int, warmup_steps: int = 0,
                 kind: str = "constant", min_ratio: float = 0.0):  # fmt: skip
        self.base, self.total_steps, self.warmup_steps = base, total_steps, warmup_steps
        self.kind, self.min_ratio = kind, min_ratio

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        lr = tf.constant(self.base, tf.float32)
        if self.kind == "cosine":
            span = float(max(1, self.total_steps - self.warmup_steps))
            progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
            cos = 0.5 * (1.0 + tf.cos(math.pi * progress))
            lr = lr * (self.min_ratio + (1.0 - self.min_ratio) * cos)
        if self.warmup_steps > 0:
            lr = lr * tf.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
        return lr

    def get_config(self):
        return {"base": self.base, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "kind": self.kind,
                "min_ratio": self.min_ratio}  # fmt: skip


def make_optimizer(t: ml_collections.ConfigDict,
                   lr_scale: float = 1.0) -> keras.optimizers.Optimizer:  # fmt: skip
    """The optimizer of ``t`` (train config); its learning rate times ``lr_scale``."""
    lr = WarmupSchedule(float(t.learning_rate) * lr_scale, int(t.num_steps),
                        int(t.warmup_steps), t.schedule, float(t.min_lr_ratio))  # fmt: skip
    kw: dict[str, Any] = {"learning_rate": lr}
    if t.clipnorm:
        kw["clipnorm"] = float(t.clipnorm)
    if t.optimizer in ("adam", "adamw"):
        kw.update(beta_1=float(t.beta_1), beta_2=float(t.beta_2), epsilon=float(t.epsilon),
                  amsgrad=bool(t.amsgrad))  # fmt: skip
    # Adam in torch's form (epsilon outside the bias correction; Keras's form is another
    # recipe): "adam" is torch Adam (L2 weight decay), "adamw" torch AdamW (decoupled).
    if t.optimizer in ("adam", "adamw"):
        opt = optimizers.TorchAdam(weight_decay=float(t.weight_decay) or None,
                                   decoupled=t.optimizer == "adamw", **kw)  # fmt: skip
    else:
        opt = keras.optimizers.SGD(momentum=float(t.momentum),
                                   weight_decay=float(t.weight_decay) or None, **kw)  # fmt: skip
    if t.precision == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def per_example_loss(target: tf.Tensor, outputs: dict, kind: str) -> tf.Tensor:
    """Mean over classes of the binary cross-entropy, one value per clip (float32)."""
    target = tf.cast(target, tf.float32)
    if kind == "bce_logits":
        logits = tf.cast(outputs["logits"], tf.float32)
        if logits.shape.rank == 3:  # decision-level models: no clip logit; use probabilities
            kind = "bce_prob"
        else:
            return tf.reduce_mean(
                tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits), -1
            )
    return losses.binary_crossentropy_on_probabilities(target, outputs["clipwise_output"])


def build_model_from_config(config: ml_collections.ConfigDict, init=None):
    """The model to train: ``config.model.name`` built anew, or (``config.model.init``) a
    transfer model from the initial model ``init`` (loaded from the config when None)."""
    from panns_keras.models.saving import build_model

    if config.model.init:
        from panns_keras.models.spec import SpecAugmentSpec
        from panns_keras.train import warm_start

        init = init if init is not None else warm_start.load_init(config.model.init)
        o, changes = config.model.overrides, {}
        if o.spec_augment is not None:
            changes["spec_augment"] = (init.spec.spec_augment or SpecAugmentSpec()) if \
                o.spec_augment else None  # fmt: skip
        if o.conv_dropout is not None:
            changes["conv_dropout"] = float(o.conv_dropout)
        model = warm_start.transfer_model(
            init, int(config.data.num_classes), config.model.mode,
            hidden=int(config.model.mlp_hidden), seed=int(config.seed), spec_changes=changes,
        )  # fmt: skip
    else:
        try:
            model = build_model(config.model.name, num_classes=int(config.data.num_classes),
                                seed=int(config.seed),
                                **config_lib.overrides_dict(config))  # fmt: skip
        except (KeyError, ValueError) as e:
            raise UserError(f"config.model.name: {e}") from None
    if config.model.disable_dropout:
        for layer in model.sublayers():
            if isinstance(layer, keras.layers.Dropout):
                layer.rate = 0.0
    if config.train.sync_batchnorm:
        for layer in model.sublayers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True
    return model


def load_labels(config: ml_collections.ConfigDict) -> list[tuple[str, str]]:
    """Labels from config.data.labels, else labels.csv beside the shards, else generic."""
    from panns_keras import labels as labels_lib
    from panns_keras.data.pipeline import list_files

    k = int(config.data.num_classes)
    candidates = [config.data.labels] if config.data.labels else []
    if not candidates:
        try:
            first = list_files(config.data.train_files)[0]
            candidates.append(os.path.join(os.path.dirname(first), formats.LABELS_NAME))
        except FileNotFoundError:
            pass
    for path in candidates:
        if path and os.path.isfile(path):
            labels = labels_lib.read_label_file(path)
            if len(labels) != k:
                raise UserError(f"{path}: {len(labels)} labels for num_classes={k}")
            return labels
    if config.data.labels:
        raise UserError(f"{config.data.labels}: label file not found")
    if k == 527:
        return labels_lib.audioset_labels()
    return [(f"class_{i}", f"class_{i}") for i in range(k)]


def _mixup_seed(config, step) -> tf.Tensor:
    return tf.stack([tf.constant(int(config.seed) * 7919 + _MIXUP_SALT, tf.int64),
                     tf.cast(step, tf.int64)])  # fmt: skip


def logmel_image(model, waveform: tf.Tensor, lam: tf.Tensor | None, seed: int) -> tf.Tensor:
    """[n, mel, T, 1] image in [0, 1] of the log-mel after SpecAugment + mixup (a separate,
    seeded SpecAugment, so logging does not move the model's random state)."""
    from panns_keras.models.layers import SpecAugment

    x = model.logmel(waveform)
    sa = model.spec.spec_augment
    if sa is not None:
        aug = SpecAugment(sa.time_drop_width, sa.time_stripes_num, sa.freq_drop_width,
                          sa.freq_stripes_num, seed=seed, dtype="float32")  # fmt: skip
        x = aug(x, training=True)
    if lam is not None:
        x = mixup_lib.do_mixup(x, lam)
    x = tf.convert_to_tensor(x, tf.float32)
    lo = tf.reduce_min(x, axis=[1, 2], keepdims=True)
    hi = tf.reduce_max(x, axis=[1, 2], keepdims=True)
    x = (x - lo) / tf.maximum(hi - lo, 1e-6)
    return tf.reverse(tf.transpose(x, [0, 2, 1]), axis=[1])[..., None]  # low freqs at bottom


# ---------------------------------------------------------------------------- trainer
class _Stop:
    def __init__(self):
        self.requested = False
        self._previous = None

    def install(self) -> None:
        def handler(signum, frame):
            logging.warning("signal %d: saving a checkpoint and stopping", signum)
            self.requested = True

        try:
            self._previous = signal.signal(signal.SIGTERM, handler)
        except ValueError:  # not the main thread
            self._previous = None

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _set_precision(precision: str) -> None:
    keras.mixed_precision.set_global_policy(precision)


def _write_config(config: ml_collections.ConfigDict, workdir: Path) -> str:
    text = config.to_json_best_effort(indent=2, sort_keys=True)
    tmp = workdir / "config.json.tmp"
    tmp.write_text(text + "\n")
    os.replace(tmp, workdir / "config.json")
    return text


def train(config: ml_collections.ConfigDict, workdir: str | os.PathLike,
          on_step: Callable[[int], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Trains (or resumes) per ``config`` in ``workdir``; returns a summary dict.

    ``on_step(step)`` is called after each training step (1-based), before any evaluation
    or checkpoint of that step.

    Returns:
        ``{'step', 'loss', 'eval' (last evaluation or None), 'best_map', 'stopped_early',
        'seconds', 'clips_per_second'}``.
    """
    config_lib.validate(config)
    workdir = Path(workdir)
    t = config.train
    if t.deterministic_ops:
        tf.config.experimental.enable_op_determinism()
    strategy = make_strategy(t.strategy)
    chief = is_chief(strategy)
    replicas = strategy.num_replicas_in_sync
    global_batch = int(t.batch_size)
    if global_batch % replicas:
        raise UserError(f"config.train.batch_size: {global_batch} is not divisible by "
                        f"{replicas} replicas")  # fmt: skip
    per_replica = global_batch // replicas
    mixup = config.data.mixup in ("in_model", "logmel")  # 'logmel': in_model's former name
    logging.info("strategy %s: %d replica(s), global batch %d (%d per replica), chief=%s",
                 type(strategy).__name__, replicas, global_batch, per_replica, chief)  # fmt: skip

    workdir.mkdir(parents=True, exist_ok=True)
    config_text = _write_config(config, workdir) if chief else ""
    labels = load_labels(config)
    names = [n for _, n in labels]

    previous_policy = keras.mixed_precision.global_policy().name
    _set_precision(t.precision)
    previous_fused = kernels.set_fused_batchnorm(bool(t.get("fused_batchnorm", False)))
    stop = _Stop()
    stop.install()
    scratch = None
    try:
        init = None
        if config.model.init:  # read once, outside the strategy scope; copied into the model
            from panns_keras.train import warm_start

            init = warm_start.load_init(config.model.init)
        # finetune with base_lr_scale != 1: the initial model's layers get their own optimizer.
        split = config.model.mode == "finetune" and float(config.model.base_lr_scale) != 1.0
        if split and t.precision == "mixed_float16":
            raise UserError("model.base_lr_scale != 1 is not supported with mixed_float16")
        keras.utils.set_random_seed(int(config.seed))  # weight initialisation
        with strategy.scope():
            model = build_model_from_config(config, init)
            optimizer = make_optimizer(t)
            base_optimizer, base_vars = None, None
            if split:
                from panns_keras.train.warm_start import split_variables

                base_vars, head_vars = split_variables(model)
                base_optimizer = make_optimizer(t, float(config.model.base_lr_scale))
                base_optimizer.build(base_vars)
                optimizer.build(head_vars)
            else:
                optimizer.build(model.trainable_variables)
            step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        best_map = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="best_map")
        if model.spec.sample_rate != int(config.data.sample_rate):
            raise UserError(f"config.data.sample_rate: {config.data.sample_rate} Hz, but the "
                            f"model runs at {model.spec.sample_rate} Hz")  # fmt: skip

        ckpt_dir = workdir / "checkpoints"
        if not chief:  # every worker writes (collectives); only the chief's copy is kept
            scratch = Path(tempfile.mkdtemp(prefix="panns_worker_"))
            ckpt_dir = scratch / "checkpoints"

        def distribute(seed_offset: int = 0, skip_steps: int = 0):
            cfg = ml_collections.ConfigDict(config.to_dict())
            cfg.seed = int(config.seed) + seed_offset

            def fn(ctx):
                from panns_keras.data.pipeline import make_train_dataset

                ds = make_train_dataset(cfg, ctx)
                if skip_steps:  # batches this pipeline fed per step x steps already taken
                    per_step = max(1, replicas // ctx.num_input_pipelines)
                    ds = ds.skip(skip_steps * per_step)
                return ds

            return iter(strategy.distribute_datasets_from_function(fn))

        track = {"model": model, "optimizer": optimizer, "step": step, "best_map": best_map}
        if base_optimizer is not None:
            track["base_optimizer"] = base_optimizer
        # Data position on resume: one replica -> the tf.data iterator is checkpointed with the
        # model; several replicas (DistributedIterator is not trackable) -> the stream is
        # rebuilt and the consumed batches skipped (exact, costs a re-read); 'reseed' -> a
        # fresh stream with a new seed (cheap, not bit-exact).
        by_iterator = t.checkpoint_input == "iterator" and replicas == 1
        iterator = None
        if by_iterator:
            iterator = distribute()
            track["iterator"] = iterator
        ckpt = tf.train.Checkpoint(**track)
        keep = max(1, int(t.keep_checkpoints))
        manager = tf.train.CheckpointManager(ckpt, str(ckpt_dir), max_to_keep=keep)
        latest = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
        if latest:
            ckpt.restore(latest).assert_existing_objects_matched()
            logging.info("resumed from %s at step %d", latest, int(step.numpy()))
        resumed_at = int(step.numpy())
        if t.checkpoint_input == "reseed":
            iterator = distribute(seed_offset=resumed_at * 1_000_003)
        elif not by_iterator:
            iterator = distribute(skip_steps=resumed_at)

        train_fn, train_fn_batch = make_step_fns(
            model, optimizer, step, strategy, config, global_batch, per_replica, mixup,
            base_optimizer=base_optimizer, base_variables=base_vars,
        )  # fmt: skip

        def noop_writer():
            return tf.summary.create_noop_writer()

        train_writer = (tf.summary.create_file_writer(str(workdir / "train")) if chief
                        else noop_writer())  # fmt: skip
        eval_writer = (tf.summary.create_file_writer(str(workdir / "eval")) if chief
                       else noop_writer())  # fmt: skip
        if chief and int(step.numpy()) == 0:
            with train_writer.as_default():
                tf.summary.text("config", f"```\n{config_text}\n```", step=0)

        predict = evaluation.make_predict_fn(model)
        has_eval = bool(config.data.eval_files)
        last_eval: dict | None = None

        def run_eval(at: int) -> dict | None:
            if not (chief and has_eval):
                return None
            from panns_keras.data.pipeline import make_eval_dataset

            res = evaluation.evaluate(predict, make_eval_dataset(config),
                                      int(config.eval.max_batches))  # fmt: skip
            logging.info("step %d eval: %s", at, evaluation.summary_line(res))
            with eval_writer.as_default():
                tf.summary.scalar("mAP", res["mAP"], step=at)
                tf.summary.scalar("mean_AUC", res["mAUC"], step=at)
                tf.summary.scalar("d_prime", res["d_prime"], step=at)
                tf.summary.scalar("accuracy", res["accuracy"], step=at)
                tf.summary.text("classes_by_AP", evaluation.classes_markdown(
                    res, names, int(config.eval.num_best_worst)), step=at)  # fmt: skip
            eval_writer.flush()
            if config.eval.keep_best and np.isfinite(res["mAP"]) and res["mAP"] > best_map.numpy():
                best_map.assign(res["mAP"])
                _export(model, workdir / "best", labels, config, at, res)
            return res

        num_steps = int(t.num_steps)
        start = int(step.numpy())
        progress = Progress(num_steps - start, "train", unit="steps",
                            enabled=bool(t.progress) and chief)  # fmt: skip
        loss_value = float("nan")
        window_t, window_steps = time.perf_counter(), 0
        t0 = time.perf_counter()
        stopped = False
        while int(step.numpy()) < num_steps:
            cur = int(step.numpy())  # the step being run (0-based); after it: cur + 1
            want_image = chief and int(t.image_every) > 0 and cur % int(t.image_every) == 0
            if want_image:
                loss, batch = train_fn_batch(iterator)
            else:
                loss = train_fn(iterator)
            done = cur + 1
            window_steps += 1
            if want_image:
                _image_summaries(model, batch, strategy, config, train_writer, cur)
            if done % int(t.log_every) == 0 or done == num_steps or done == start + 1:
                loss_value = float(loss.numpy())
                now = time.perf_counter()
                rate = window_steps * global_batch / max(now - window_t, 1e-9)
                with train_writer.as_default():
                    tf.summary.scalar("loss", loss_value, step=done)
                    lr = float(optimizer.learning_rate.numpy())
                    tf.summary.scalar("learning_rate", lr, step=done)
                    tf.summary.scalar("throughput (clips/s)", rate, step=done)
                logging.info("step %d loss %.5f  %.1f clips/s", done, loss_value, rate)
                window_t, window_steps = now, 0
            progress.update(1, postfix=f"step {done}, loss {loss_value:.4f}")
            if on_step is not None:
                on_step(done)
            evaluated = False
            if has_eval and int(config.eval.every) > 0 and done % int(config.eval.every) == 0:
                last_eval = run_eval(done)
                evaluated = True
            if done % int(t.checkpoint_every) == 0 or done == num_steps or stop.requested:
                manager.save(checkpoint_number=done)
            if done == num_steps and has_eval and not evaluated:
                last_eval = run_eval(done)
            if stop.requested:
                stopped = True
                break
        progress.close()
        if not stopped and int(step.numpy()) == start:  # nothing to do: already trained
            last_eval = None
        elapsed = time.perf_counter() - t0
        train_writer.flush()
        if chief and not stopped:
            _export(model, workdir / "model", labels, config, int(step.numpy()), last_eval)
        if last_eval is not None:
            last_eval = {k: v for k, v in last_eval.items() if k != "predictions"}
        ran = int(step.numpy()) - start
        return {"step": int(step.numpy()), "loss": loss_value, "eval": last_eval,
                "best_map": float(best_map.numpy()), "stopped_early": stopped,
                "seconds": elapsed, "clips_per_second": ran * global_batch / max(elapsed, 1e-9),
                "model": model, "labels": labels}  # fmt: skip
    finally:
        stop.uninstall()
        _set_precision(previous_policy)
        kernels.set_fused_batchnorm(previous_fused)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _export(model, out: Path, labels, config, at: int, res: dict | None) -> None:
    from panns_keras.models.saving import save_model_dir

    extra: dict[str, Any] = {"step": at, "train_config": json.loads(
        config.to_json_best_effort())}  # fmt: skip
    if res is not None:
        extra["eval"] = {k: float(res[k]) for k in ("mAP", "mAUC", "d_prime", "accuracy")}
    save_model_dir(model, out, labels, extra)


def make_step_fns(model, optimizer, step, strategy, config, global_batch, per_replica, mixup,
                  with_outputs=False, base_optimizer=None, base_variables=None):  # fmt: skip
    """The training step: ``(train_fn, train_fn_batch)``, ``tf.function``s of an iterator.

    One step takes the next (per-replica) batch ``{'waveform': [2B, n], 'target': [2B, K]}``
    (``[B, ...]`` without mixup), mixes the targets with the pairs and lambdas of the
    reference (the model mixes its inputs in its own mixup domain), runs the forward, BCE on
    probabilities averaged over the global batch, and applies the optimizer(s).
    A batch that carries ``'mixup_lambda'`` ``[2B]`` uses those lambdas instead of the seeded
    ones (replaying a recorded trajectory). ``train_fn`` returns the loss (summed over
    replicas), with ``with_outputs`` also the ``clipwise_output`` of that forward (gathered over
    replicas); ``train_fn_batch`` returns ``(loss, batch)``.

    ``base_optimizer`` / ``base_variables``: finetune's initial-model layers at their own
    learning rate; the rest of ``model.trainable_variables`` goes to ``optimizer``. In the
    frozen transfer modes the model runs in inference mode (only the new head trains).
    """
    t = config.train
    alpha = float(config.data.mixup_alpha)
    loss_kind = t.loss
    scale = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    training = not str(config.model.get("mode", "scratch")).startswith("freeze")
    if base_optimizer is None:
        groups = [(optimizer, model.trainable_variables)]
    else:
        ids = {id(v) for v in base_variables}
        groups = [(base_optimizer, list(base_variables)),
                  (optimizer, [v for v in model.trainable_variables if id(v) not in ids])]
    variables = [v for _, vs in groups for v in vs]

    def forward_backward(waveform, target, lam):
        with tf.GradientTape() as tape:
            out = model(waveform, training=training, mixup_lambda=lam,
                        return_intermediates=loss_kind == "bce_logits")  # fmt: skip
            per_ex = per_example_loss(target, out, loss_kind)
            loss = tf.nn.compute_average_loss(per_ex, global_batch_size=global_batch)
            scaled = optimizer.scale_loss(loss) if scale else loss
        grads = tape.gradient(scaled, variables)
        return loss, grads, out["clipwise_output"]

    if t.jit_compile:
        forward_backward = tf.function(forward_backward, jit_compile=True)

    def replica_step(batch, cur):
        waveform, target = batch["waveform"], batch["target"]
        lam = None
        if mixup and "mixup_lambda" in batch:  # prescribed lambdas (replayed trajectories)
            lam = tf.cast(batch["mixup_lambda"], tf.float32)
            target = mixup_lib.do_mixup(target, lam)
        elif mixup:
            # One lambda per GLOBAL pair from (seed, step); replica r takes its slice, so the
            # mixed batch does not depend on how the global batch is split over replicas.
            rid = tf.distribute.get_replica_context().replica_id_in_sync_group
            lam_all = mixup_lib.sample_mixup_lambda(global_batch, alpha, _mixup_seed(config, cur))
            lam = lam_all[rid * 2 * per_replica : (rid + 1) * 2 * per_replica]
            target = mixup_lib.do_mixup(target, lam)
        loss, grads, clipwise = forward_backward(waveform, target, lam)
        start = 0
        for opt, vs in groups:
            opt.apply_gradients(zip(grads[start : start + len(vs)], vs))
            start += len(vs)
        return loss, clipwise

    def run(iterator):
        batch = next(iterator)
        cur = step.read_value()
        per_replica_loss, per_replica_out = strategy.run(replica_step, args=(batch, cur))
        loss = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica_loss, axis=None)
        step.assign_add(1)
        return loss, batch, per_replica_out

    @tf.function
    def train_fn(iterator):
        loss, _, out = run(iterator)
        if with_outputs:
            return loss, strategy.gather(out, axis=0)
        return loss

    @tf.function
    def train_fn_batch(iterator):
        loss, batch, _ = run(iterator)
        return loss, batch

    return train_fn, train_fn_batch


def _image_summaries(model, batch, strategy, config, writer, cur: int) -> None:
    local = strategy.experimental_local_results(batch)[0]
    wav = local["waveform"]
    n = int(config.train.num_audio_samples)
    with writer.as_default():
        if n > 0:
            tf.summary.audio("train_audio", wav[:n, :, None], int(config.data.sample_rate),
                             step=cur, max_outputs=n)  # fmt: skip
        if model.spec.frontend is None:
            return
        lam = None
        k = min(int(wav.shape[0]), 6)
        if config.data.mixup in ("in_model", "logmel"):
            k -= k % 2
            lam = mixup_lib.sample_mixup_lambda(int(config.train.batch_size),
                                                float(config.data.mixup_alpha),
                                                _mixup_seed(config, cur))[:k]  # fmt: skip
        img = logmel_image(model, wav[:k], lam, seed=int(config.seed) + cur)
        tf.summary.image("train_logmel (bn0+SpecAugment+mixup)", img, step=cur, max_outputs=3)
