"""What an exported model file is: :class:`ArtifactInfo`, written by every exporter.

The SavedModel keeps it as ``loaded.info`` (JSON) with the labels in ``class_names``; a
``.tflite`` as ``panns_keras.json`` in its appended zip with the labels in its metadata's
``labels.txt``; an ``.onnx`` in its ``metadata_props``. :mod:`panns_keras.runtime` reads it
back to run the file without the Keras model.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from panns_keras.errors import UserError

CLIPWISE = "clipwise_output"
EMBEDDING = "embedding"
FRAMEWISE = "framewise_output"


@dataclasses.dataclass(frozen=True)
class ArtifactInfo:
    """An exported model: inputs, outputs in order, labels, sample rate, window.

    Attributes:
      format: the file kind and version (``panns_keras.tflite/1``, ...).
      model: the model's registry name (``cnn14``, ...).
      sample_rate: Hz the model expects.
      min_samples: shortest input the model takes (shorter input is zero-padded).
      outputs: output names, ``clipwise_output`` first.
      labels: display names, one per class, in output order.
      frame_hop_samples: samples between ``framewise_output`` rows (log-mel models), or None.
      input_samples: the fixed input length (the window, ``.tflite``), or None (any length).
      variant: the TFLite variant (``float32``, ``mediapipe_int8``, ...), or None.
      clip_samples: the length of the clips the model was trained on (``spec.clip_samples``),
        or None when unknown: inference windows default to it and shorter input is
        zero-padded to it, as in training.
    """

    format: str
    model: str
    sample_rate: int
    min_samples: int
    outputs: tuple[str, ...]
    labels: tuple[str, ...]
    frame_hop_samples: int | None = None
    input_samples: int | None = None
    variant: str | None = None
    clip_samples: int | None = None

    @classmethod
    def of_model(
        cls,
        model,
        format: str,
        outputs,
        labels,
        *,
        input_samples: int | None = None,
        variant: str | None = None,
    ) -> ArtifactInfo:
        """The description of an export of ``model`` (an AudioTagger)."""
        spec = model.spec
        fe = spec.frontend
        return cls(
            format=format,
            model=spec.name,
            sample_rate=int(spec.sample_rate),
            min_samples=int(spec.min_samples),
            outputs=tuple(outputs),
            labels=tuple(labels),
            frame_hop_samples=int(fe.hop_size) if fe else None,
            input_samples=None if input_samples is None else int(input_samples),
            variant=variant,
            clip_samples=spec.clip_samples,
        )

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to_json(self) -> dict[str, Any]:
        """The JSON fields (labels travel beside them, in each format's own label slot)."""
        out: dict[str, Any] = {"format": self.format, "model": self.model}
        if self.variant is not None:
            out["variant"] = self.variant
        out["sample_rate"] = self.sample_rate
        if self.input_samples is not None:
            out["input_samples"] = self.input_samples
        out["min_samples"] = self.min_samples
        if self.clip_samples is not None:
            out["clip_samples"] = self.clip_samples
        out["outputs"] = list(self.outputs)
        out["num_classes"] = self.num_classes
        # framewise_output row i is centred at i * frame_hop_samples (decision-level models)
        out["frame_hop_samples"] = self.frame_hop_samples
        return out

    @classmethod
    def from_json(cls, fields: dict[str, Any] | str, labels, where: str = "") -> ArtifactInfo:
        """Reads :meth:`to_json`'s fields (a dict or JSON text) with the file's labels.

        Raises:
          UserError: a field is missing or the labels do not match ``num_classes``.
        """
        prefix = f"{where}: " if where else ""
        try:
            d = json.loads(fields) if isinstance(fields, (str, bytes)) else dict(fields)
            labels = tuple(str(x) for x in labels)
            if "num_classes" in d and int(d["num_classes"]) != len(labels):
                raise UserError(f"{prefix}{len(labels)} labels for {d['num_classes']} classes")
            hop = d.get("frame_hop_samples")
            window = d.get("input_samples")
            clip = d.get("clip_samples")
            return cls(
                format=str(d["format"]),
                model=str(d["model"]),
                sample_rate=int(d["sample_rate"]),
                min_samples=int(d["min_samples"]),
                outputs=tuple(d["outputs"]),
                labels=labels,
                frame_hop_samples=None if hop is None else int(hop),
                input_samples=None if window is None else int(window),
                variant=d.get("variant"),
                clip_samples=None if clip is None else int(clip),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{prefix}not a panns-keras export description ({e!r})") from None
