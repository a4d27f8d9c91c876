"""SavedModel export: callable like YAMNet on TF Hub, plus the ``serving_default`` signature.

    loaded = tf.saved_model.load(path)
    out = loaded(waveform)          # float32 [batch, samples] at loaded.sample_rate
    out["clipwise_output"], out["embedding"], out["logmel"], out["logits"]
    loaded.class_names              # string tf.Variable, one display name per class
    loaded.labels_file.asset_path   # assets/labels.txt, the same names one per line

``loaded(waveform)`` and ``loaded.signatures["serving_default"](waveform=...)`` return the
same dict: ``clipwise_output``, then ``embedding`` (clip models) or ``framewise_output``
(decision-level models), ``logits`` (pre-sigmoid scores) and ``logmel`` (``[batch, frames,
mel_bins]``, log-mel models only). Batch and length are dynamic. Inputs shorter than
``spec.min_samples`` are zero-padded to it inside the graph (by the model itself), so any
length >= 1 works. ``loaded.info`` is a JSON string (model name, sample rate,
outputs, frame hop) that :mod:`panns_keras.runtime` reads.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import logging

from panns_keras.artifact import CLIPWISE, ArtifactInfo
from panns_keras.export import common
from panns_keras.fileio import atomic_dir

LABELS_TXT = "labels.txt"
INFO_FORMAT = "panns_keras.savedmodel/1"
# max |score diff| between the re-loaded SavedModel and the Keras model (same float32 graph).
TOLERANCE = 1e-5


def serving_function(model, keys=None, intermediates: bool = False):
    """``tf.function`` over ``[None, None]`` float32 waveforms returning ``keys`` outputs.

    With ``intermediates``, also ``logits`` and (log-mel models) ``logmel``.
    """
    keys = tuple(keys or common.output_keys(model))
    if intermediates:
        keys += intermediate_keys(model)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform")])
    def serve(waveform):
        # the model pads inputs shorter than its minimum itself
        out = model(waveform, training=False, return_intermediates=intermediates)
        return {k: tf.identity(out[k], name=k) for k in keys}

    return serve


def intermediate_keys(model) -> tuple[str, ...]:
    return ("logits",) + (("logmel",) if model.spec.frontend is not None else ())


def export_savedmodel(model, out_dir, labels=None, verify_inputs=None) -> Path:
    """Writes a SavedModel of ``model`` to ``out_dir`` (replaced), re-loads and verifies it.

    Args:
      model: an AudioTagger.
      out_dir: destination directory.
      labels: Labels, (mid, name) pairs or names; default ``model.labels``.
      verify_inputs: float32 ``[n, samples]`` waveforms for the check (default: synthetic).

    Raises:
      ExportVerificationError: the re-loaded model's scores differ by more than TOLERANCE.
    """
    out_dir = Path(out_dir)
    names = common.label_names(model, labels)
    serve = serving_function(model, intermediates=True)
    module = tf.Module()
    module.model = model
    module.serve = serve
    module.__call__ = serve  # the loaded object is callable: loaded(waveform) -> dict
    module.class_names = tf.Variable(names, trainable=False, name="class_names")
    module.sample_rate = tf.Variable(
        int(model.spec.sample_rate), trainable=False, name="sample_rate"
    )
    info = ArtifactInfo.of_model(model, INFO_FORMAT, common.output_keys(model), names)
    module.info = tf.Variable(json.dumps(info.to_json()), trainable=False, name="info")
    with (
        atomic_dir(out_dir) as staging,
        tempfile.TemporaryDirectory(prefix=".labels.", dir=staging.parent) as source,
    ):
        labels_path = Path(source) / LABELS_TXT
        labels_path.write_text("\n".join(names) + "\n", encoding="utf-8")
        module.labels_file = tf.saved_model.Asset(str(labels_path))
        tf.saved_model.save(module, str(staging), signatures={"serving_default": serve})
    verify_savedmodel(model, out_dir, verify_inputs)
    logging.info("wrote SavedModel %s", out_dir)
    return out_dir


def verify_savedmodel(model, path, inputs=None) -> dict:
    """Re-loads the SavedModel and compares every output with the Keras model."""
    if inputs is None:
        inputs = common.synthetic_windows(model.spec.sample_rate, model.spec.sample_rate * 2)
    inputs = np.asarray(inputs, np.float32)
    loaded = tf.saved_model.load(str(path))
    ref = common.batched(lambda v: model(v, training=False, return_intermediates=True), inputs)
    keys = common.output_keys(model) + intermediate_keys(model)
    stats = None
    signature = loaded.signatures["serving_default"]
    for how, fn in (
        ("signature", lambda v: signature(waveform=tf.constant(v))),
        ("call", lambda v: loaded(tf.constant(v))),
    ):
        got = common.batched(fn, inputs)
        if sorted(got) != sorted(keys):
            raise common.ExportVerificationError(f"savedmodel {how}: outputs {sorted(got)}")
        checker = common.FloatCheck(f"savedmodel {how}", model, inputs, TOLERANCE)
        s = checker.scores(common.compare_scores(ref[CLIPWISE], got[CLIPWISE]))
        stats = stats or s
        for key in keys[1:]:
            checker.output(key, ref[key], got[key])
    labels_file = loaded.labels_file.asset_path.numpy().decode()
    if not os.path.isfile(labels_file):
        raise common.ExportVerificationError("savedmodel: labels asset missing")
    return stats
