"""panns-keras prepare --out=OUT (--class_dir=DIR | --generic_csv=CSV |
--audioset_csv=CSV --audio_dir=DIR --labels_csv=CSV) [--sample_rate=32000] [--clip_seconds=10]

Audio files and labels -> sharded TFRecords, manifest.json and labels.csv
(panns_keras.data.prepare).
Every usable input is written; then, as every batch verb, prepare exits 1 with one line
naming the manifest when any input could not be used (more than --max_fail_fraction of them:
0 by default; e.g. 0.05 accepts up to 5% skipped); the manifest lists every skipped input
with its reason."""

from __future__ import annotations

from absl import flags

from panns_keras.data.prepare import flags as prep_flags

prep_flags.define_flags()
HELP_MODULES = ("panns_keras.data.prepare.flags",)


def main(argv, verb="prepare"):
    from panns_keras.data.prepare import run
    from panns_keras.errors import UsageError, UserError

    if len(argv) > 1:
        raise UsageError(f"{argv[1]}: unexpected argument (inputs are given by flags)")
    try:
        manifest = run.run(flags.FLAGS)
    except (FileNotFoundError, NotADirectoryError) as e:
        raise UserError(f"{e.filename}: {e.strerror}" if e.filename else str(e)) from None
    except ValueError as e:
        raise UserError(str(e)) from None
    print(f"prepared {run.summary(manifest)} -> {flags.FLAGS.out}")
    return 0
