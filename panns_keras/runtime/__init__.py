"""Running a model whatever its format: ``load_runner(path_or_model)`` -> :class:`Runner`.

runner.py           Runner, load_runner, from_keras, from_artifact
tflite.py           TfliteRunner; reads a .tflite's ArtifactInfo
tflite_metadata.py  reads the MediaPipe metadata of a .tflite
metadata_schema.py  field ids of that metadata (shared with its writer)
savedmodel.py       reads a SavedModel written by export
onnx.py             OnnxRunner (onnxruntime); reads an .onnx's ArtifactInfo
"""

from panns_keras.runtime.runner import Runner, from_artifact, from_keras, load_runner

__all__ = ["Runner", "from_artifact", "from_keras", "load_runner"]
