"""Running an exported ``.onnx`` with onnxruntime (:class:`OnnxRunner`) and reading what it
is (:func:`read_onnx_artifact`, from its ``metadata_props``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from panns_keras.artifact import ArtifactInfo

INFO_KEY = "panns_keras.json"  # metadata_props key of the ArtifactInfo fields
INFO_FORMAT = "panns_keras.onnx/1"


class OnnxRunner:
    """Runs an exported ``.onnx`` (bytes or path) with onnxruntime on the CPU."""

    def __init__(self, model, num_threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        source = os.fspath(model) if isinstance(model, (str, Path)) else model
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.keys = tuple(o.name for o in self.session.get_outputs())
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """``x``: float32 ``[n, samples]`` (any length); returns output name -> array."""
        got = self.session.run(None, {self.input_name: np.asarray(x, np.float32)})
        return dict(zip(self.keys, got))


def read_onnx_artifact(runner: OnnxRunner, where: str = "") -> ArtifactInfo:
    """The :class:`ArtifactInfo` an exported ``.onnx`` carries (labels one per line)."""
    meta = runner.metadata
    return ArtifactInfo.from_json(
        meta.get(INFO_KEY, "{}"), meta.get("labels", "").split("\n"), where
    )
