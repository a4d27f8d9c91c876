"""Deployment exports: SavedModel, TFLite variants, a MediaPipe AudioClassifier model, ONNX.

ONNX (:func:`export_onnx`) needs the optional ``onnx`` extra (tf2onnx, onnx, onnxruntime);
without it, asking for it raises a one-line :class:`panns_keras.errors.UserError`.
"""

from panns_keras.export.common import ExportVerificationError
from panns_keras.export.onnx_export import export_onnx
from panns_keras.export.savedmodel import export_savedmodel
from panns_keras.export.tflite import VARIANTS, export_mediapipe, export_tflite

__all__ = [
    "VARIANTS",
    "ExportVerificationError",
    "export_mediapipe",
    "export_onnx",
    "export_savedmodel",
    "export_tflite",
]
