"""Data preparation: audio files -> class-grouped, sharded TFRecords, manifest.json and
labels.csv (``panns-keras prepare``; ``python -m data_prep`` from the repository's top level).

Modules: :mod:`.options` (:class:`PrepareOptions`, one run's settings), :mod:`.inputs` (the
three input layouts -> clips and labels), :mod:`.writer` (shard plan, per-clip transform,
resumable shard writer, manifest; :func:`prepare`), :mod:`.beam` (the same under Apache
Beam), :mod:`.flags` and :mod:`.run` (the command line's flags and exit rule). Importing
any of them does not import TensorFlow (the decoding workers stay light).
"""

from panns_keras.data.prepare.options import PrepareOptions
from panns_keras.data.prepare.writer import prepare

__all__ = ["PrepareOptions", "prepare"]
