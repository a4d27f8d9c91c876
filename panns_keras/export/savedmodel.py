"""SavedModel export: ``serving_default(waveform[batch, samples]) -> dict of outputs``.

Batch and length are dynamic. Inputs shorter than ``spec.min_samples`` are zero-padded to
it inside the graph (by the model itself), so any length >= 1 works.
The class names travel as the asset ``assets/labels.txt`` (one display name per line, in
output order); ``loaded.labels_file`` is its path after ``tf.saved_model.load``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import logging

from panns_keras.export import common

LABELS_TXT = "labels.txt"
# max |score diff| between the re-loaded SavedModel and the Keras model (same float32 graph).
TOLERANCE = 1e-5


def serving_function(model, keys=None):
    """``tf.function`` over ``[None, None]`` float32 waveforms returning ``keys`` outputs."""
    keys = tuple(keys or common.output_keys(model))

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform")])
    def serve(waveform):
        out = model(waveform, training=False)  # the model pads short inputs itself
        return {k: tf.identity(out[k], name=k) for k in keys}

    return serve


def export_savedmodel(model, out_dir, labels=None, verify_inputs=None) -> Path:
    """Writes a SavedModel of ``model`` to ``out_dir`` (replaced), re-loads and verifies it.

    Args:
      model: an AudioTagger.
      out_dir: destination directory.
      labels: (mid, name) pairs or names; default ``model.labels``.
      verify_inputs: float32 ``[n, samples]`` waveforms for the check (default: synthetic).

    Raises:
      ExportVerificationError: the re-loaded model's scores differ by more than TOLERANCE.
    """
    out_dir = Path(out_dir)
    names = common.label_names(model, labels)
    serve = serving_function(model)
    module = tf.Module()
    module.model = model
    module.serve = serve
    staging = Path(tempfile.mkdtemp(prefix=".savedmodel.", dir=out_dir.parent))
    try:
        labels_path = staging / LABELS_TXT
        labels_path.write_text("\n".join(names) + "\n", encoding="utf-8")
        module.labels_file = tf.saved_model.Asset(str(labels_path))
        target = staging / "model"
        tf.saved_model.save(module, str(target), signatures={"serving_default": serve})
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(target, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    verify_savedmodel(model, out_dir, verify_inputs)
    logging.info("wrote SavedModel %s", out_dir)
    return out_dir


def verify_savedmodel(model, path, inputs=None) -> dict:
    """Re-loads the SavedModel and compares every output with the Keras model."""
    if inputs is None:
        inputs = common.synthetic_windows(model.spec.sample_rate, model.spec.sample_rate * 2)
    inputs = np.asarray(inputs, np.float32)
    loaded = tf.saved_model.load(str(path))
    got = loaded.signatures["serving_default"](waveform=tf.constant(inputs))
    ref = model(inputs, training=False)
    stats = common.compare_scores(ref[common.CLIPWISE], got[common.CLIPWISE].numpy())
    common.check("savedmodel", stats, TOLERANCE, None)
    for key in common.output_keys(model)[1:]:
        r, g = np.asarray(ref[key]), got[key].numpy()
        scale = max(1.0, float(np.abs(r).max()))
        if r.shape != g.shape or not np.allclose(g, r, atol=TOLERANCE * scale, rtol=0):
            raise common.ExportVerificationError(f"savedmodel: output {key} differs from Keras")
    labels_file = loaded.labels_file.asset_path.numpy().decode()
    if not os.path.isfile(labels_file):
        raise common.ExportVerificationError("savedmodel: labels asset missing")
    return stats
