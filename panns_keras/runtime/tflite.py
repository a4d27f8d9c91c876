"""Running an exported ``.tflite`` (:class:`TfliteRunner`) and reading what it is
(:func:`read_tflite_info`, :func:`read_tflite_artifact`) from its metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from panns_keras.artifact import ArtifactInfo
from panns_keras.audio import fit_length
from panns_keras.errors import UserError
from panns_keras.runtime.tflite_metadata import read_metadata

INFO_FILE = "panns_keras.json"  # in the appended zip, beside labels.txt
INFO_FORMAT = "panns_keras.tflite/1"


class TfliteRunner:
    """Runs a ``.tflite`` (bytes or path) one window at a time with the LiteRT interpreter."""

    def __init__(self, model, keys=None, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        content = Path(model).read_bytes() if isinstance(model, (str, Path)) else model
        self.interpreter = Interpreter(model_content=content, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.outputs = self.interpreter.get_output_details()
        self.length = int(self.input["shape"][-1])
        # Output names: the signature's when there is one (our exports: clipwise_output,
        # embedding / framewise_output, in get_output_details() order), else output_<i>.
        sigs = self.interpreter.get_signature_list()
        self._runner = None
        if sigs:
            key = next(iter(sigs))
            self._runner = self.interpreter.get_signature_runner(key)
            self._input_name = sigs[key]["inputs"][0]
            tensor_names = [d["name"] for d in self.outputs]
            sig_names = list(sigs[key]["outputs"])
            names = tensor_names if sorted(tensor_names) == sorted(sig_names) else sig_names
        else:
            names = [f"output_{i}" for i in range(len(self.outputs))]
        self.names = tuple(names)
        if keys and sorted(keys) != sorted(names) and len(keys) != len(names):
            raise ValueError(f"keys {list(keys)} do not match the outputs {names}")
        self.keys = tuple(keys) if keys else self.names

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """``x``: float32 ``[n, length]``; returns output name -> ``[n, ...]``."""
        x = np.asarray(x, np.float32)
        results = []
        for row in x:
            row = fit_length(row, self.length)[None]
            if self._runner is not None:
                out = self._runner(**{self._input_name: row})
                results.append([out[n] for n in self.names])
            else:
                self.interpreter.set_tensor(self.input["index"], row)
                self.interpreter.invoke()
                results.append([self.interpreter.get_tensor(d["index"]) for d in self.outputs])
        merged = {n: np.concatenate([r[i] for r in results]) for i, n in enumerate(self.names)}
        if sorted(self.keys) == sorted(self.names):
            return {k: merged[k] for k in self.keys}
        return dict(zip(self.keys, merged.values()))  # legacy files: keys by position


def read_tflite_info(content: bytes) -> dict:
    """``panns_keras.json`` of an exported ``.tflite`` plus ``labels`` (from its metadata).

    Raises:
      UserError: the file has no metadata written by this project.
    """
    try:
        meta = read_metadata(content)
    except ValueError as e:
        raise UserError(f"not a panns-keras TFLite export ({e})") from None
    if INFO_FILE not in meta["files"] or not meta["labels"]:
        raise UserError(f"not a panns-keras TFLite export (no {INFO_FILE} or labels)")
    info = json.loads(meta["files"][INFO_FILE].decode())
    info["labels"] = meta["labels"]
    audio = meta["subgraphs"][0]["inputs"][0]["content"] or {}
    info["metadata_sample_rate"] = audio.get("sample_rate")
    return info


def read_tflite_artifact(content: bytes, where: str = "") -> ArtifactInfo:
    """The :class:`ArtifactInfo` of an exported ``.tflite`` (raises UserError otherwise)."""
    info = read_tflite_info(content)
    return ArtifactInfo.from_json(info, info["labels"], where)


def load_tflite(path: str | Path, num_threads: int | None = None):
    """``(TfliteRunner, "tflite", ArtifactInfo)`` for the ``.tflite`` at ``path``."""
    path = Path(path)
    content = path.read_bytes()
    try:
        info = read_tflite_artifact(content)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    runner = TfliteRunner(content, num_threads=num_threads or os.cpu_count())
    if list(runner.keys) != list(info.outputs):
        raise UserError(f"{path}: outputs {list(runner.keys)} do not match its metadata")
    return runner, "tflite", info
