"""Data preparation: audio files -> class-grouped, sharded TFRecords (`python -m data_prep`)."""
