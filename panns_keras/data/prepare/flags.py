"""absl flags of `panns-keras prepare` / `python -m data_prep` and the options they give.

`define_flags()` is idempotent, so a CLI can call it (and `run(FLAGS)`) without
clashing with an earlier definition.
"""

from __future__ import annotations

import dataclasses

from absl import flags

from panns_keras.data.prepare.options import PrepareOptions

_DEFINED_MARKER = "max_fail_fraction"  # the last flag define_flags defines


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    if _DEFINED_MARKER in flag_values:
        return
    fv = flag_values
    flags.DEFINE_string("out", None, "Output folder for shards and manifest.", flag_values=fv)
    flags.DEFINE_string("name", "train", "Shard name prefix.", flag_values=fv)
    flags.DEFINE_string("audioset_csv", "", "AudioSet segments CSV (layout a).", flag_values=fv)
    flags.DEFINE_string("audio_dir", "", "Audio folder for --audioset_csv.", flag_values=fv)
    flags.DEFINE_string(
        "labels_csv",
        "",
        "index,mid,display_name CSV (class_labels_indices.csv).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "filename_pattern",
        "",
        "AudioSet file name pattern, e.g. '{ytid}_{start}.wav' (default: Y<ytid>.*, "
        "<ytid>_<start>.* with any audio extension).",
        flag_values=fv,
    )
    flags.DEFINE_string("generic_csv", "", "CSV path,labels[,fold] (layout b).", flag_values=fv)
    flags.DEFINE_string(
        "folds", "", "Comma list of folds to keep (the others are not prepared).", flag_values=fv
    )
    flags.DEFINE_string(
        "fold_pattern",
        "",
        "--class_dir: regex searched in each clip's path under the root; its first group (else "
        "the match) is the clip's fold, e.g. '_([a-z]+)_' (FSDD speaker), '^[^/]+/([^/]+)/' "
        "(<class>/<fold>/clip). --generic_csv takes the fold from its fold column.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "class_dir",
        "",
        "Folder with one sub-folder per class (layout c).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "sample_rate", 32000, "Target sample rate (Hz).", flag_values=fv, lower_bound=1000
    )
    flags.DEFINE_float(
        "clip_seconds",
        10.0,
        "Clip length; pad with zeros or trim.",
        flag_values=fv,
        lower_bound=0.01,
    )
    flags.DEFINE_integer(
        "clips_per_shard", 256, "Maximum clips per shard.", flag_values=fv, lower_bound=1
    )
    flags.DEFINE_integer(
        "num_workers", 0, "Decoding processes (0 = all cores).", flag_values=fv, lower_bound=0
    )
    flags.DEFINE_float(
        _DEFINED_MARKER,
        0.0,
        "Exit 1 (after writing every usable clip) when skipped inputs / all inputs exceeds "
        "this; 0: when any input was skipped, the rule of every batch verb.",
        flag_values=fv,
        lower_bound=0.0,
        upper_bound=1.0,
    )


def options_from_flags(fv: flags.FlagValues = flags.FLAGS) -> PrepareOptions:
    """The run's :class:`PrepareOptions` from parsed flags (every field is a flag of the same
    name)."""
    return PrepareOptions(**{f.name: fv[f.name].value for f in dataclasses.fields(PrepareOptions)})
