"""panns-keras train --config=configs/audioset.py:cnn14 --workdir=DIR [--config.x.y=value ...]

Trains (or resumes from the newest checkpoint in DIR) under a tf.distribute strategy: all
visible GPUs, several workers via TF_CONFIG, or one device. Every config field can be
overridden, e.g. --config.train.batch_size=64 --config.data.train_files='data/*.tfrecord'.
TensorBoard: tensorboard --logdir DIR.
"""

from __future__ import annotations

import sys

from absl import flags
from ml_collections import config_flags
from ml_collections.config_flags import config_path

from panns_keras.errors import UserError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file with get_config(arg): path[:arg], e.g. configs/audioset.py:cnn14."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, TensorBoard logs, exported models.")


def _missing_fields(flag, argument) -> list[str]:
    config = flag.parser.parse(argument)
    bad = []
    for path in flag._GetOverrides(flag._GetArgv()):
        try:
            config_path.get_value(path, config)
        except (AttributeError, KeyError, IndexError, ValueError):
            bad.append(path)
    return bad


def one_line_missing_field_errors(holder, prog: str = "panns-keras train") -> None:
    """Makes an override of a field the config lacks exit with one line (ml_collections
    raises an AttributeError with a traceback from inside absl's flag parsing)."""
    flag = holder._flagvalues[holder.name]
    original = flag._parse

    def parse(argument):
        try:
            return original(argument)
        except (AttributeError, KeyError) as e:
            bad = _missing_fields(flag, argument) or [str(e).strip("\"'")]
            fields = ", ".join(f"--{holder.name}.{b}" for b in bad)
            print(f"{prog}: error: {fields}: no such field in {argument} "
                  "(see the config file or --help for the fields)", file=sys.stderr)  # fmt: skip
            sys.exit(2)

    flag._parse = parse


one_line_missing_field_errors(_CONFIG)


def main(argv, verb="train"):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments {argv[1:]}; give flags only")
    if _CONFIG.value is None:
        raise UserError("--config=configs/<recipe>.py[:model] is required")
    if not _WORKDIR.value:
        raise UserError("--workdir DIR is required")
    from panns_keras.train.trainer import train

    result = train(_CONFIG.value, _WORKDIR.value)
    ev = result["eval"]
    line = f"trained to step {result['step']} (loss {result['loss']:.4f})"
    if ev is not None:
        line += f"; eval mAP {ev['mAP']:.4f}, mean AUC {ev['mAUC']:.4f}, d' {ev['d_prime']:.3f}"
    if result["stopped_early"]:
        line += "; stopped by signal (checkpoint saved, rerun to resume)"
    print(line)
    print(f"workdir: {_WORKDIR.value} (tensorboard --logdir {_WORKDIR.value})")
    return 0
