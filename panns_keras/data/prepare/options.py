"""What one preparation run reads and writes: :class:`PrepareOptions`, shared by the local
writer, the Beam pipeline, the flags of ``panns-keras prepare`` and the transfer verbs."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class PrepareOptions:
    """The inputs (exactly one layout) and the output settings of a preparation run.

    Args:
        audioset_csv: AudioSet segments CSV (layout a); needs ``audio_dir`` and ``labels_csv``.
        audio_dir: the audio folder of ``audioset_csv``.
        labels_csv: ``index,mid,display_name`` class list (layout a; optional for layout b).
        filename_pattern: AudioSet file name pattern, e.g. ``'{ytid}_{start}.wav'``.
        generic_csv: ``path,labels[,fold]`` CSV (layout b).
        folds: comma list of folds to keep ("" keeps all).
        class_dir: a folder with one sub-folder per class (layout c).
        fold_pattern: layout c: regex whose first group (else the match) in a clip's path
            under ``class_dir`` is the clip's fold.
        name: shard file name prefix.
        sample_rate: target sample rate in Hz.
        clip_seconds: clip length; shorter clips are zero-padded, longer ones trimmed.
        clips_per_shard: most clips per shard.
        num_workers: decoding processes (0: one per core; ignored by Beam).

    Example:
        >>> PrepareOptions(class_dir="clips/", sample_rate=16000).clip_samples
        160000
    """

    audioset_csv: str = ""
    audio_dir: str = ""
    labels_csv: str = ""
    filename_pattern: str = ""
    generic_csv: str = ""
    folds: str = ""
    class_dir: str = ""
    fold_pattern: str = ""
    name: str = "train"
    sample_rate: int = 32000
    clip_seconds: float = 10.0
    clips_per_shard: int = 256
    num_workers: int = 0

    @property
    def clip_samples(self) -> int:
        return round(self.clip_seconds * self.sample_rate)

    def with_fields(self, **fields) -> PrepareOptions:
        """A copy with ``fields`` replaced; an unknown field name raises TypeError."""
        return dataclasses.replace(self, **fields) if fields else self
