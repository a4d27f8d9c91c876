"""Deployment exports: SavedModel, TFLite variants and a MediaPipe AudioClassifier model.

ONNX export is not built yet: tf2onnx 1.17.0 with onnx 1.23.2 and onnxruntime 1.32.0
installs beside the pinned stack (checked with a dry run), so converting the exported
SavedModel with ``python -m tf2onnx.convert --saved-model DIR`` works in the same venv;
wiring it in (and verifying the DFT-kernel front end in onnxruntime) is open work.
"""

from panns_keras.export.common import ExportVerificationError
from panns_keras.export.savedmodel import export_savedmodel
from panns_keras.export.tflite import VARIANTS, export_mediapipe, export_tflite

__all__ = [
    "VARIANTS",
    "ExportVerificationError",
    "export_mediapipe",
    "export_savedmodel",
    "export_tflite",
]
