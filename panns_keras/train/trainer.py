"""The training loop: one loop for every backend, over small modules with one concern each.

* the step (forward, mixup, loss; written once in ``keras.ops``): ``train/step.py``
* the backend layer (gradients, compilation, devices, checkpoints):
  ``train/backends/tf_engine.py`` (``tf.function``, ``tf.distribute`` strategies) and
  ``train/backends/jax_engine.py`` (``jax.jit``, ``keras.distribution.DataParallel``),
  chosen by ``KERAS_BACKEND``; their interface is ``train/backends/engine.py``
* the optimizer and its schedule: ``train/optimizers.py``; the loss: ``train/losses.py``
* the model to train (scratch or warm start): ``train/warm_start.py``
* the data source, labels and data errors: ``train/inputs.py``
* TensorBoard: ``train/summaries.py``; the profiler trace: ``train/profiler.py``; signals,
  checkpoints, model directories: ``train/checkpoints.py``

Why a custom loop and not ``model.fit``: the step needs (a) the reference's in-model mixup
with a lambda per pair that is a pure function of (seed, step, global pair index), so any
number of replicas reproduces the single-device batch; (b) the BCE on probabilities averaged
over the GLOBAL batch; (c) the ``tf.data`` iterator inside the same checkpoint as model and
optimizer for exact resumption; (d) checkpoint / SIGTERM / best-model logic that does not
fit ``fit``'s callback ordering.

Layout of ``workdir``:
  config.json          the resolved config
  checkpoints/         ckpt-<step>.* (TensorFlow) or ckpt-<step>.npz (JAX), newest N kept
  best/                model directory of the best eval mAP (``load_model``-able) + metrics
  model/               model directory of the last step
  events.out.tfevents.*  hparams; train/, eval/: TensorBoard event files (summaries.jsonl
                       without TensorFlow; train/summaries.py)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import ml_collections
import numpy as np
from absl import logging

from panns_keras.errors import UserError
from panns_keras.models import kernels
from panns_keras.progress import Progress
from panns_keras.train import checkpoints, inputs, optimizers, warm_start
from panns_keras.train import config as config_lib
from panns_keras.train import step as step_lib
from panns_keras.train.backends.engine import Engine
from panns_keras.train.profiler import Profiler
from panns_keras.train.summaries import Summaries

# Kept importable from here (callers of the former one-module trainer).
build_model_from_config = warm_start.build_model_from_config
load_labels = inputs.load_labels
make_optimizer = optimizers.make_optimizer


def make_engine(config, workdir: Path) -> Engine:
    """The backend layer of ``keras.backend.backend()`` (``backends.engine.Engine``)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from panns_keras.train.backends.tf_engine import TFEngine

        return TFEngine(config, workdir)
    if backend == "jax":
        from panns_keras.train.backends.jax_engine import JaxEngine

        return JaxEngine(config, workdir)
    raise UserError(f"KERAS_BACKEND={backend}: the trainer runs on tensorflow or jax")


def cpu_has_bfloat16() -> bool:
    """Whether this CPU has bfloat16 arithmetic (AVX512_BF16 or AMX); Linux flags."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return True  # unknown: do not warn
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _warn_precision(precision: str, device: str) -> None:
    if precision == "mixed_bfloat16" and device == "cpu" and not cpu_has_bfloat16():
        logging.warning(
            "config.train.precision=mixed_bfloat16: this CPU has no bfloat16 "
            "arithmetic (no AVX512_BF16/AMX), so every op is emulated and a step "
            "is several times slower than float32; use "
            "--config.train.precision=float32"
        )


def build_for_training(config, init=None):
    """The model and its optimizer groups (inside the engine's device scope)."""
    t = config.train
    model = warm_start.build_model_from_config(config, init)
    optimizer = optimizers.make_optimizer(t)
    base_optimizer = base_vars = None
    if config.model.mode == "finetune" and float(config.model.base_lr_scale) != 1.0:
        base_vars, _ = warm_start.split_variables(model)
        base_optimizer = optimizers.make_optimizer(t, float(config.model.base_lr_scale))
    groups = step_lib.variable_groups(model, optimizer, base_optimizer, base_vars)
    for opt, vs in groups:
        opt.build(vs)
    return model, groups


def train(
    config: ml_collections.ConfigDict,
    workdir: str | Path,
    on_step: Callable[[int], None] | None = None,
    progress=None,
) -> dict[str, Any]:
    """Trains (or resumes) per ``config`` in ``workdir`` on the Keras backend in use.

    ``on_step(step)`` is called after each training step (1-based), before any evaluation
    or checkpoint of that step. ``progress``: an object with ``update(n, postfix=...)`` and
    ``close()`` that shows the steps (default: a ``train`` :class:`Progress` of this run;
    finetune passes one line for all its splits).

    Returns:
        ``{'step', 'loss', 'eval' (last evaluation or None), 'best_map', 'stopped_early',
        'signal', 'seconds', 'clips_per_second', 'model', 'labels', 'backend'}``. A run
        stopped by a signal has ``stopped_early`` True (the CLI then exits
        :data:`~panns_keras.train.checkpoints.EXIT_STOPPED`).
    """
    config_lib.validate(config)
    workdir = Path(workdir)
    t = config.train
    if (
        t.precision == "mixed_float16"
        and config.model.mode == "finetune"
        and float(config.model.base_lr_scale) != 1.0
    ):
        raise UserError("model.base_lr_scale != 1 is not supported with mixed_float16")
    engine = make_engine(config, workdir)
    synthetic = inputs.is_synthetic(config)
    has_eval = bool(config.data.eval_files) and not synthetic
    logging.info(
        "%s backend: %d replica(s), global batch %d, chief=%s",
        engine.backend,
        engine.replicas,
        engine.spec.global_batch,
        engine.chief,
    )

    workdir.mkdir(parents=True, exist_ok=True)
    config_text = checkpoints.write_config(config, workdir) if engine.chief else ""
    labels = inputs.load_labels(config)
    names = [label.display_name for label in labels]

    previous_policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(t.precision)
    previous_fused = kernels.set_fused_batchnorm(bool(t.get("fused_batchnorm", False)))
    _warn_precision(t.precision, engine.device_kind())
    stop = checkpoints.StopSignal()
    stop.install()
    summaries = profiler = None
    try:
        # The initial model is read once, outside any device scope, and copied into the model.
        init = warm_start.load_init(config.model.init) if config.model.init else None
        keras.utils.set_random_seed(int(config.seed))  # weight initialisation
        engine.build(lambda: build_for_training(config, init))
        model = engine.model
        if model.spec.sample_rate != int(config.data.sample_rate):
            raise UserError(
                f"config.data.sample_rate: {config.data.sample_rate} Hz, but the "
                f"model runs at {model.spec.sample_rate} Hz"
            )
        inputs.check_shards(config, model.spec.sample_rate)
        start = engine.start(inputs.dataset_fn(config), synthetic)
        summaries = Summaries(
            workdir,
            enabled=engine.chief,
            num_pr_curves=int(config.eval.get("num_pr_curves", 10)),
            num_best_worst=int(config.eval.num_best_worst),
        )
        profiler = Profiler(
            workdir / "train",
            t.get("profile_steps", ""),
            enabled=engine.chief,
            backend=engine.backend,
        )
        summaries.hparams(config, model_name=model.spec.name)
        if start == 0:
            summaries.config_text(config_text)

        predict = engine.predict_fn() if has_eval else None
        last_eval: dict | None = None

        def run_eval(at: int) -> dict | None:
            if not (engine.chief and has_eval):
                return None
            from panns_keras.data.pipeline import make_eval_dataset
            from panns_keras.train import evaluation

            res = evaluation.evaluate(
                predict, make_eval_dataset(config), int(config.eval.max_batches)
            )
            logging.info("step %d eval: %s", at, evaluation.summary_line(res))
            summaries.evaluation(at, res, names)
            summaries.flush()
            if config.eval.keep_best and np.isfinite(res["mAP"]) and res["mAP"] > engine.best_map:
                engine.best_map = float(res["mAP"])
                _sync(engine)
                checkpoints.export_model(model, workdir / "best", labels, config, at, res)
            return res

        num_steps = int(t.num_steps)
        if progress is None:
            progress = Progress(
                num_steps - start, "train", unit="steps", enabled=bool(t.progress) and engine.chief
            )
        alpha, pairs = float(config.data.mixup_alpha), engine.spec.global_batch
        loss_value = float("nan")
        window_t, window_steps = time.perf_counter(), 0
        t0 = time.perf_counter()
        stopped = False
        while engine.step < num_steps:
            cur = engine.step  # the step being run (0-based); after it: cur + 1
            lam = (
                step_lib.mixup_lambdas(int(config.seed), cur, pairs, alpha)
                if engine.spec.mixes
                else None
            )
            want_media = engine.chief and int(t.image_every) > 0 and cur % int(t.image_every) == 0
            try:
                with profiler.step(cur + 1):
                    loss, batch = engine.train_step(lam, keep_batch=want_media)
            except Exception as e:  # a data error: one line naming the shard
                err = inputs.data_error(e)
                if err is None:
                    raise
                raise err from None
            done = cur + 1
            window_steps += 1
            if want_media:
                _media(engine, summaries, batch, lam, config, cur)
            if done % int(t.log_every) == 0 or done == num_steps or done == start + 1:
                loss_value = float(np.asarray(loss))
                now = time.perf_counter()
                rate = window_steps * engine.spec.global_batch / max(now - window_t, 1e-9)
                parts = {k: float(np.asarray(v)) for k, v in engine.loss_parts.items()}
                summaries.train_step(done, loss_value, engine.learning_rate(), rate, parts)
                logging.info("step %d loss %.5f  %.1f clips/s", done, loss_value, rate)
                window_t, window_steps = now, 0
            progress.update(1, postfix=f"step {done}, loss {loss_value:.4f}")
            if on_step is not None:
                on_step(done)
            evaluated = False
            if has_eval and int(config.eval.every) > 0 and done % int(config.eval.every) == 0:
                _sync(engine)
                last_eval = run_eval(done)
                evaluated = True
            if done % int(t.checkpoint_every) == 0 or done == num_steps or stop.requested:
                engine.save_checkpoint()
            if done == num_steps and has_eval and not evaluated:
                _sync(engine)
                last_eval = run_eval(done)
            if stop.requested:
                stopped = True
                break
        progress.close()
        profiler.stop()
        if not stopped and engine.step == start:  # nothing to do: already trained
            last_eval = None
        elapsed = time.perf_counter() - t0
        summaries.flush()
        _sync(engine)
        if engine.chief and not stopped:
            checkpoints.export_model(
                model, workdir / "model", labels, config, engine.step, last_eval
            )
        if last_eval is not None:
            last_eval = {k: v for k, v in last_eval.items() if k != "predictions"}
        ran = engine.step - start
        return {
            "step": engine.step,
            "loss": loss_value,
            "eval": last_eval,
            "best_map": engine.best_map,
            "stopped_early": stopped,
            "signal": stop.signum,
            "seconds": elapsed,
            "clips_per_second": ran * engine.spec.global_batch / max(elapsed, 1e-9),
            "model": model,
            "labels": labels,
            "backend": engine.backend,
        }
    finally:
        stop.uninstall()
        if profiler is not None:
            profiler.stop()
        if summaries is not None:
            summaries.close()
        engine.close()
        keras.mixed_precision.set_global_policy(previous_policy)
        kernels.set_fused_batchnorm(previous_fused)


def _sync(engine: Engine) -> None:
    engine.sync()


def logmel_image(model, waveform, lam, seed: int) -> np.ndarray:
    """``[n, mel, T, 1]`` image in [0, 1] of the log-mel after SpecAugment + mixup (a
    separate, seeded SpecAugment, so logging does not move the model's random state)."""
    from panns_keras.models.layers import SpecAugment, do_mixup

    x = model.logmel(waveform)
    sa = model.spec.spec_augment
    if sa is not None:
        aug = SpecAugment(
            sa.time_drop_width,
            sa.time_stripes_num,
            sa.freq_drop_width,
            sa.freq_stripes_num,
            seed=seed,
            dtype="float32",
        )
        x = aug(x, training=True)
    if lam is not None:
        x = do_mixup(x, lam)
    x = np.asarray(keras.ops.convert_to_numpy(x), np.float32)  # (n, T, mel)
    lo = x.min(axis=(1, 2), keepdims=True)
    hi = x.max(axis=(1, 2), keepdims=True)
    x = (x - lo) / np.maximum(hi - lo, 1e-6)
    return np.flip(np.transpose(x, (0, 2, 1)), axis=1)[..., None]  # low freqs at the bottom


def _media(engine, summaries, batch, lam, config, cur: int) -> None:
    """Audio of the batch and a log-mel image (bn0 + SpecAugment + mixup) of a few clips."""
    model = engine.model
    wav = batch["waveform"]
    n = int(config.train.num_audio_samples)
    image = None
    if model.spec.frontend is not None:
        _sync(engine)
        k = min(int(wav.shape[0]), 6)
        mix = None
        if lam is not None and engine.spec.mixup == "in_model":
            k -= k % 2
            mix = lam[:k]
        if k > 0:
            image = logmel_image(model, wav[:k], mix, seed=int(config.seed) + cur)
    summaries.train_media(cur, wav[:n] if n > 0 else None, int(config.data.sample_rate), image)
