"""The training step, written once in ``keras.ops`` for every backend.

One step of the reference recipe (``pytorch/main.py`` of the PANNs reference):

1. the batch holds ``2B`` clips and their multi-hot targets (``B`` without mixup);
2. the targets are mixed in pairs with the step's lambdas (one mixup, :func:`do_mixup`);
   the model mixes its own inputs in its mixup domain (log-mel, waveform or Wavegram), or,
   with ``config.data.mixup='waveform'``, the waveforms are mixed here before the model;
3. the training-mode forward (SpecAugment, dropout, BatchNorm batch statistics);
4. BCE on the probabilities (the reference's loss), averaged over the GLOBAL batch, so a
   step spread over replicas sums to the single-device loss;
5. the optimizer update, per variable group (finetune's base layers have their own
   learning rate; see :func:`variable_groups`).

Distillation (``config.data.teacher``, ``config.train.distill``; EfficientAT's
``ex_audioset.py``): the batch also holds the teacher's clip logits; the teacher targets
``sigmoid(logits / T)`` (temperature on the teacher only, as EfficientAT) are mixed in pairs
with the same lambdas as the labels, and the loss is ``(1 - w) * BCE(labels) + w *
BCE(teacher targets)``, both with the step's loss kind. Mixing the targets equals
EfficientAT's ``lam * BCE(y, t_a) + (1 - lam) * BCE(y, t_b)``: BCE is linear in its target.

What differs per backend (how gradients are taken, how the step is compiled and spread over
devices) lives in ``train/backends/``; they call :func:`compute_loss` with a ``call`` that
runs the model their way (stateful on TensorFlow, ``stateless_call`` on JAX).

The mixup lambdas are drawn on the host from ``(seed, step)``
(:func:`mixup_lambdas`): the same values on every backend, replica count and resume.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from keras import ops

from panns_keras.models.layers import do_mixup
from panns_keras.train import losses

_MIXUP_SALT = 0x6D6978  # "mix"


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """What one training step does (from the training config).

    Args:
        global_batch: clips per step after mixup, over all replicas.
        loss: ``bce_prob`` (reference) or ``bce_logits``.
        training: run the model in training mode (False in the frozen transfer modes).
        mixup: ``in_model`` (the model mixes in its own domain), ``waveform`` (mixed here,
            before the model) or ``none``.
        distill: the batch carries ``teacher_logits`` and the loss distills from them.
        distill_weight: ``w`` of the teacher part (the label part has ``1 - w``).
        distill_temperature: ``T`` of the teacher targets ``sigmoid(logits / T)``.
    """

    global_batch: int
    loss: str = "bce_prob"
    training: bool = True
    mixup: str = "in_model"
    distill: bool = False
    distill_weight: float = 0.0
    distill_temperature: float = 1.0

    @classmethod
    def from_config(cls, config) -> StepSpec:
        mixup = str(config.data.mixup)
        mixup = "in_model" if mixup == "logmel" else mixup  # 'logmel': in_model's old name
        from panns_keras.train.config import distill_settings

        distill, weight, temperature = distill_settings(config)
        return cls(
            global_batch=int(config.train.batch_size),
            loss=str(config.train.loss),
            training=not str(config.model.get("mode", "scratch")).startswith("freeze"),
            mixup=mixup,
            distill=distill,
            distill_weight=weight,
            distill_temperature=temperature,
        )

    @property
    def mixes(self) -> bool:
        return self.mixup != "none"

    @property
    def clips_per_step(self) -> int:
        """Clips the input pipeline feeds per step (2B with mixup)."""
        return self.global_batch * (2 if self.mixes else 1)


def mixup_lambdas(seed: int, step: int, num_pairs: int, alpha: float) -> np.ndarray:
    """``[l0, 1 - l0, l1, 1 - l1, ...]`` (float32, ``2 * num_pairs``), ``l ~ Beta(a, a)``.

    A pure function of ``(seed, step)``: one lambda per GLOBAL pair, so the mixed batch does
    not depend on the backend, on how the batch is split over replicas, or on a resume.
    """
    rng = np.random.default_rng([int(seed) * 7919 + _MIXUP_SALT, int(step)])
    lam = rng.beta(float(alpha), float(alpha), size=int(num_pairs)).astype(np.float32)
    return np.stack([lam, 1.0 - lam], axis=1).reshape(-1)


def per_example_loss(target, outputs: dict, kind: str):
    """Mean over classes of the binary cross-entropy, one float32 value per clip."""
    target = ops.cast(target, "float32")
    if kind == "bce_logits" and "logits" in outputs and len(outputs["logits"].shape) == 2:
        logits = ops.cast(outputs["logits"], "float32")
        return ops.mean(ops.binary_crossentropy(target, logits, from_logits=True), axis=-1)
    # bce_prob, and decision-level models under bce_logits (no clip logit): probabilities.
    return losses.binary_crossentropy_on_probabilities(target, outputs["clipwise_output"])


def compute_loss(call: Callable[..., tuple[dict, Any]], waveform, target, lam, spec: StepSpec):
    """:func:`compute_losses` without a teacher: ``(loss, clipwise_output, aux)``."""
    loss, _, clipwise, aux = compute_losses(call, waveform, target, lam, spec)
    return loss, clipwise, aux


def teacher_targets(teacher_logits, temperature: float):
    """``sigmoid(teacher_logits / T)``, float32 (the teacher's soft multi-label targets)."""
    z = ops.cast(teacher_logits, "float32")
    return ops.sigmoid(z / float(temperature))


def compute_losses(
    call: Callable[..., tuple[dict, Any]],
    waveform,
    target,
    lam,
    spec: StepSpec,
    teacher_logits=None,
):
    """Forward and loss of one (per-replica) batch.

    Args:
        call: ``call(waveform, mixup_lambda) -> (outputs, aux)`` runs the model in the
            step's mode (``aux``: whatever the backend needs back, e.g. new BatchNorm state).
        waveform: ``(2B, samples)`` (``(B, samples)`` without mixup), float.
        target: ``(2B, K)`` multi-hot (``(B, K)`` without mixup).
        lam: ``(2B,)`` lambdas or None.
        spec: the step's :class:`StepSpec`.
        teacher_logits: ``(2B, K)`` (``(B, K)`` without mixup) when ``spec.distill``.

    Returns:
        ``(loss, parts, clipwise_output, aux)``: the loss is this replica's share of the
        global mean (summed over replicas it is the reference's mean over ``B x K``);
        ``parts`` is ``{}``, or with a teacher ``{'label_loss', 'teacher_loss'}`` (each
        unweighted, this replica's share; ``loss = (1 - w) * label + w * teacher``).
    """
    target = ops.cast(target, "float32")
    soft = None
    if spec.distill:
        if teacher_logits is None:
            raise ValueError("spec.distill: the batch has no teacher_logits")
        soft = teacher_targets(teacher_logits, spec.distill_temperature)
    if lam is not None:
        target = do_mixup(target, lam)
        if soft is not None:
            soft = do_mixup(soft, lam)  # the same lambdas as inputs and labels
        if spec.mixup == "waveform":
            waveform = do_mixup(waveform, lam)
            lam = None
    outputs, aux = call(waveform, lam)
    n = float(spec.global_batch)
    label_loss = ops.sum(per_example_loss(target, outputs, spec.loss)) / n
    if soft is None:
        return label_loss, {}, outputs["clipwise_output"], aux
    teacher_loss = ops.sum(per_example_loss(soft, outputs, spec.loss)) / n
    w = float(spec.distill_weight)
    loss = (1.0 - w) * label_loss + w * teacher_loss
    parts = {"label_loss": label_loss, "teacher_loss": teacher_loss}
    return loss, parts, outputs["clipwise_output"], aux


def split_losses(out) -> tuple[Any, dict]:
    """A compiled step's loss output -> ``(loss, parts)``: a distilling step returns the
    dict ``{'loss', 'label_loss', 'teacher_loss'}``, the others the loss alone."""
    if isinstance(out, dict):
        parts = dict(out)
        return parts.pop("loss"), parts
    return out, {}


def variable_groups(model, optimizer, base_optimizer=None, base_variables=None) -> list:
    """``[(optimizer, variables), ...]`` covering ``model.trainable_variables`` once each.

    With ``base_optimizer`` (finetune with ``model.base_lr_scale != 1``) the initial model's
    layers (``base_variables``) train with it and the rest with ``optimizer``.
    """
    if base_optimizer is None:
        return [(optimizer, list(model.trainable_variables))]
    ids = {id(v) for v in base_variables}
    head = [v for v in model.trainable_variables if id(v) not in ids]
    return [(base_optimizer, list(base_variables)), (optimizer, head)]
