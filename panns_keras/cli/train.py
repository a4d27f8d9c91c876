"""panns-keras train --config=audioset:cnn14 --out=DIR [--config.x.y=value ...]

--config: a packaged recipe NAME[:ARG] (listed under --config below; the files are in the
package's configs/) or a PATH.py[:ARG] of your own with get_config(arg).
`panns-keras train --config=SPEC --help` lists the config's fields with their values;
--print_config prints the resolved config (after every override) and exits.

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

from panns_keras.cli.configflag import ConfigFlag
from panns_keras.errors import Stopped, UsageError

CONFIG = ConfigFlag(
    None,
    "Recipe NAME[:ARG] (e.g. audioset:cnn14) or PATH.py[:ARG].",
    prog="panns-keras train",
    module_name=__name__,
)
_OUT = flags.DEFINE_string(
    "out",
    None,
    "Training workdir: checkpoints, TensorBoard logs, exported models (a rerun resumes from it).",
)


def main(argv, verb="train"):
    if len(argv) > 1:
        raise UsageError(f"{argv[1]}: unexpected argument (give flags only)")
    config = CONFIG.value
    if CONFIG.print_requested():
        print(CONFIG.describe(config))
        return 0
    if not _OUT.value:
        raise UsageError("--out: required (the training workdir)")
    from panns_keras.models.registry import UnknownModelError, canonical_name

    try:  # an unknown architecture: one line, before any work
        canonical_name(config.model.name)
    except UnknownModelError as e:
        raise UsageError(f"--config.model.name={e}") from None
    from panns_keras.train import inputs

    inputs.preflight(config)  # data mistakes in one line, before TensorFlow loads
    from panns_keras.train.trainer import train

    result = train(config, _OUT.value)
    ev = result["eval"]
    line = f"trained to step {result['step']} (loss {result['loss']:.4f})"
    if ev is not None:
        line += f"; eval mAP {ev['mAP']:.4f}, mean AUC {ev['mAUC']:.4f}, d' {ev['d_prime']:.3f}"
        from panns_keras.metrics import nan_reason

        why = nan_reason(ev)
        line += f" ({why})" if why else ""
    if result["stopped_early"]:
        raise Stopped(
            f"{_OUT.value}: stopped at step {result['step']} by signal "
            f"{result['signal']} (checkpoint saved); run the same command again "
            "to resume"
        )
    print(line)
    print(f"workdir: {_OUT.value} (tensorboard --logdir {_OUT.value})")
    return 0
