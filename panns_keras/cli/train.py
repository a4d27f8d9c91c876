"""panns-keras train --config=audioset:cnn14 --out=DIR [--config.x.y=value ...]

--config: a packaged recipe NAME[:ARG] (audioset, audioset_balanced, demo; see
panns_keras/configs/) or a PATH.py[:ARG] of your own with get_config(arg).

Trains (or resumes from the newest checkpoint in DIR, the training workdir) on the Keras
backend in use: TensorFlow (default) under a tf.distribute strategy (all visible GPUs, several
workers via TF_CONFIG, or one device), or KERAS_BACKEND=jax under jax.jit (DataParallel over
the local devices). Same configs, flags and model directory on both.
A run stopped by SIGTERM saves a checkpoint and exits 143; the same command resumes it.
Every config field can be overridden, e.g. --config.train.batch_size=64
--config.data.train_files='data/*.tfrecord'.
TensorBoard: tensorboard --logdir DIR.
"""

from __future__ import annotations

from absl import flags
from ml_collections import config_flags

from panns_keras.cli.configflag import one_line_missing_field_errors
from panns_keras.errors import Stopped, UserError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Packaged recipe NAME[:ARG] (e.g. audioset:cnn14) or PATH.py[:ARG]."
)
_OUT = flags.DEFINE_string("out", None, "Training workdir: checkpoints, TensorBoard logs, "
                            "exported models (a rerun resumes from it).")  # fmt: skip


one_line_missing_field_errors(_CONFIG)


def main(argv, verb="train"):
    if len(argv) > 1:
        raise UserError(f"{argv[1]}: unexpected argument (give flags only)")
    if _CONFIG.value is None:
        raise UserError("--config: required (a recipe such as audioset:cnn14, or FILE.py[:ARG])")
    if not _OUT.value:
        raise UserError("--out: required (the training workdir)")
    from panns_keras.train.trainer import train

    result = train(_CONFIG.value, _OUT.value)
    ev = result["eval"]
    line = f"trained to step {result['step']} (loss {result['loss']:.4f})"
    if ev is not None:
        line += f"; eval mAP {ev['mAP']:.4f}, mean AUC {ev['mAUC']:.4f}, d' {ev['d_prime']:.3f}"
    if result["stopped_early"]:
        raise Stopped(f"{_OUT.value}: stopped at step {result['step']} by signal "
                      f"{result['signal']} (checkpoint saved); run the same command again "
                      "to resume")  # fmt: skip
    print(line)
    print(f"workdir: {_OUT.value} (tensorboard --logdir {_OUT.value})")
    return 0
