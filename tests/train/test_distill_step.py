"""The distillation loss of the one training step against NumPy, on the Keras backend in use
(``make test`` on TensorFlow; ``make test-jax`` runs this file under JAX), and an exact
resume of a distilling run (synthetic source: random teacher logits, no TensorFlow needed)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.train_data import tiny_config

K = 5


def _np_bce(target, p):
    """torch's binary_cross_entropy on probabilities (log clamped at -100), mean over K."""
    logp = np.maximum(np.log(np.where(p > 0, p, 1.0)), -100.0)
    logq = np.maximum(np.log(np.where(1 - p > 0, 1 - p, 1.0)), -100.0)
    logp = np.where(p > 0, logp, -100.0)
    logq = np.where(1 - p > 0, logq, -100.0)
    return -np.mean(target * logp + (1 - target) * logq, axis=-1)


def _np_bce_logits(target, z):
    return np.mean(np.maximum(z, 0) - z * target + np.log1p(np.exp(-np.abs(z))), axis=-1)


def _np_mix(x, lam):
    m = x * lam[:, None]
    return m[0::2] + m[1::2]


def _np_distill(target, teacher, lam, student, w, temperature, kind, global_batch):
    """The formula written out: (1 - w) * BCE(mixed labels) + w * BCE(mixed sigmoid(t / T))."""
    soft = 1.0 / (1.0 + np.exp(-teacher.astype(np.float64) / temperature))
    if lam is not None:
        target, soft = _np_mix(target, lam), _np_mix(soft, lam)
    if kind == "bce_prob":
        p = 1.0 / (1.0 + np.exp(-student))
        label, teach = _np_bce(target, p), _np_bce(soft, p)
    else:
        label, teach = _np_bce_logits(target, student), _np_bce_logits(soft, student)
    label, teach = label.sum() / global_batch, teach.sum() / global_batch
    return (1 - w) * label + w * teach, label, teach


def _batch(n, seed=0):
    rng = np.random.default_rng(seed)
    target = (rng.random((n, K)) < 0.4).astype(np.float32)
    teacher = (3.0 * rng.standard_normal((n, K))).astype(np.float16).astype(np.float32)
    return target, teacher


@pytest.mark.parametrize("kind", ["bce_prob", "bce_logits"])
@pytest.mark.parametrize("mixup", [True, False])
def test_distill_loss_matches_numpy(kind, mixup):
    """compute_losses on a fixed batch (fixed student logits) against the NumPy formula."""
    from keras import ops

    from panns_keras.train import step as step_lib

    b = 4
    n = 2 * b if mixup else b
    target, teacher = _batch(n)
    student = np.random.default_rng(1).standard_normal((b, K)).astype(np.float32)
    lam = step_lib.mixup_lambdas(7, 3, b, 0.4) if mixup else None
    spec = step_lib.StepSpec(
        global_batch=b,
        loss=kind,
        mixup="in_model" if mixup else "none",
        distill=True,
        distill_weight=0.7,
        distill_temperature=2.0,
    )
    seen = {}

    def call(waveform, mix):
        seen["lam"] = mix
        z = ops.convert_to_tensor(student)
        return {"clipwise_output": ops.sigmoid(z), "logits": z}, "aux"

    wav = np.zeros((n, 16), np.float32)
    loss, parts, _, aux = step_lib.compute_losses(call, wav, target, lam, spec, teacher)
    want, label, teach = _np_distill(target, teacher, lam, student, 0.7, 2.0, kind, b)
    assert aux == "aux" and (seen["lam"] is None) == (not mixup)
    got = [
        float(ops.convert_to_numpy(x)) for x in (loss, parts["label_loss"], parts["teacher_loss"])
    ]
    np.testing.assert_allclose(got, [want, label, teach], rtol=2e-6, atol=1e-7)
    # weight 0: the label-only loss, unchanged
    plain = step_lib.StepSpec(global_batch=b, loss=kind, mixup=spec.mixup)
    only, _, _ = step_lib.compute_loss(call, wav, target, lam, plain)
    np.testing.assert_allclose(float(ops.convert_to_numpy(only)), label, rtol=2e-6)


def test_engine_step_distills_as_numpy():
    """The backend's compiled step (tf.function / jax.jit) of a tiny model, in-model mixup:
    its loss and parts equal the NumPy formula on the step's own clipwise outputs."""
    import keras

    from panns_keras.train import step as step_lib
    from panns_keras.train.trainer import build_for_training

    cfg = tiny_config("", batch_size=4)
    cfg.data.num_classes = K
    cfg.data.teacher = "unused"  # a teacher: the step distills
    cfg.train.distill.weight = 0.6
    cfg.train.distill.temperature = 1.5
    spec = step_lib.StepSpec.from_config(cfg)
    assert spec.distill and spec.distill_weight == 0.6 and spec.clips_per_step == 8
    keras.utils.set_random_seed(0)
    model, groups = build_for_training(cfg)
    target, teacher = _batch(8, seed=2)
    wav = (0.1 * np.random.default_rng(3).standard_normal((8, 4000))).astype(np.float32)
    lam = step_lib.mixup_lambdas(0, 0, 4, 1.0)
    if keras.backend.backend() == "jax":
        from panns_keras.train.backends import jax_engine

        run = jax_engine.make_step_fn(model, groups, spec, with_outputs=True)
        state = jax_engine.initial_state(model, groups)
        _, out, clipwise = run(state, wav, target, lam, teacher)
    else:
        import tensorflow as tf

        from panns_keras.train.backends import tf_engine

        run = tf_engine.make_step_fn(model, groups, spec, with_outputs=True)
        batch = {"waveform": wav, "target": target, "teacher_logits": teacher}
        out, clipwise = run({k: tf.constant(v) for k, v in batch.items()}, tf.constant(lam))
    loss, parts = step_lib.split_losses(out)
    p = np.asarray(clipwise, np.float64)  # (4, K): the forward the loss was taken on
    soft = _np_mix(1.0 / (1.0 + np.exp(-teacher.astype(np.float64) / 1.5)), lam)
    label = _np_bce(_np_mix(target, lam), p).sum() / 4
    teach = _np_bce(soft, p).sum() / 4
    got = [float(np.asarray(x)) for x in (loss, parts["label_loss"], parts["teacher_loss"])]
    np.testing.assert_allclose(got, [0.4 * label + 0.6 * teach, label, teach], rtol=1e-5)


def _synthetic(num_steps):
    cfg = tiny_config("", num_steps=num_steps, checkpoint_every=2)
    cfg.data.source = "synthetic"
    cfg.data.train_files = ""
    cfg.train.progress = False
    cfg.train.distill.weight = 0.8  # synthetic source: random teacher logits
    return cfg


def test_distilling_run_resumes_exactly(tmp_path):
    """3 steps, then 2 more in the same workdir == 5 straight (model, optimizer, step); the
    summaries carry the label and teacher parts of the loss."""
    import json
    import os

    from panns_keras.train.trainer import train

    straight = train(_synthetic(5), tmp_path / "straight")
    train(_synthetic(3), tmp_path / "resumed")
    resumed = train(_synthetic(5), tmp_path / "resumed")
    assert resumed["step"] == 5
    diff = max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
        for a, b in zip(straight["model"].weights, resumed["model"].weights)
    )
    assert diff < 1e-6, diff
    assert abs(straight["loss"] - resumed["loss"]) < 1e-6
    jsonl = tmp_path / "straight" / "summaries.jsonl"
    if os.path.isfile(jsonl):  # JAX-only environment: summaries as JSON lines
        tags = {json.loads(x)["tag"] for x in jsonl.read_text().splitlines() if x.strip()}
    else:
        from tests.helpers.train_data import read_events

        tags = set(read_events(tmp_path / "straight")["train"])
    assert {"loss", "label_loss", "teacher_loss"} <= tags, tags
