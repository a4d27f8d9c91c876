"""panns-keras prepare --prepare_output_dir=OUT (--class_dir=DIR | --generic_csv=CSV |
--audioset_csv=CSV --audio_dir=DIR --labels_csv=CSV) [--prepare_sample_rate=32000]
[--clip_seconds=10]

Audio files and labels -> sharded TFRecords, manifest.json and labels.csv (see data_prep/)."""

from __future__ import annotations

from absl import flags

from data_prep import flags as prep_flags

prep_flags.define_flags()
HELP_MODULES = ("data_prep.flags",)


def main(argv, verb="prepare"):
    from data_prep import cli
    from panns_keras.errors import UserError

    if len(argv) > 1:
        raise UserError(f"unexpected arguments {argv[1:]} (inputs are given by flags)")
    if not flags.FLAGS.prepare_output_dir:
        raise UserError("--prepare_output_dir=OUT is required")
    try:
        return cli.run(flags.FLAGS)
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:
        raise UserError(str(e)) from None
