"""panns-keras finetune --data=FOLDER|CSV|TFRECORD_DIR --model=MODEL --out=DIR
[--mode=finetune|freeze_l1|freeze_l3|scratch|probe] [--folds=all|a,b|none]
[--config=finetune] [--config.train.num_steps=500 ...]

Transfer learning with the trainer `panns-keras train` uses: --model (a model directory,
.keras file or PANNs .pth) is the initial model, the data's classes get a new head. A class
folder or a path,labels[,fold] CSV is first prepared into OUT/data at the model's sample
rate; a folder written by `panns-keras prepare` is read as it is. Each split holds out one
fold (--folds=all: every fold in turn) and is one training run in OUT/split_fold_<f>/
(checkpoints, TensorBoard, model/); OUT/results.json has every split's accuracy and mAP and
their means. A re-run skips finished splits and resumes an interrupted one.
--config: the recipe (default: the packaged `finetune` one, from any directory); every
field can be overridden as in `train`, e.g. --config.train.num_steps=500
--config.model.base_lr_scale=0.1; --help lists the fields, --print_config prints the
resolved config (after the overrides, --model and --mode) and exits.
"""

from __future__ import annotations

import os

from absl import flags

from panns_keras.cli.configflag import ConfigFlag
from panns_keras.errors import UsageError, UserError

MODES = ("finetune", "freeze_l1", "freeze_l3", "scratch", "probe")
_DATA = flags.DEFINE_string("data", None, "Class folder, CSV path,labels[,fold], or TFRecord "
                            "folder written by `panns-keras prepare`.")  # fmt: skip
_OUT = flags.DEFINE_string("out", None, "Output folder (a rerun reuses finished splits).")
_MODEL = flags.DEFINE_string("model", None, "The initial model: preset name (cnn14), model "
                             "directory, .keras or PANNs .pth file.")  # fmt: skip
_MODE = flags.DEFINE_enum("mode", None, MODES, "Transfer mode (default: the config's, "
                          "finetune); probe = a linear classifier fit to convergence on the "
                          "initial model's embeddings.")  # fmt: skip
_FOLDS = flags.DEFINE_string(
    "folds",
    "all",
    "'all' (each fold held out in turn), 'a,b' "
    "(these folds, one split each) or 'none' (train on everything).",
)
_ARCH = flags.DEFINE_string(
    "arch",
    None,
    "Not used by finetune (it starts from --model); "
    "to train an architecture from scratch use `panns-keras train`.",
)
_CLIP = flags.DEFINE_float("clip_seconds", 10.0, "Clip length when preparing a folder/CSV.",
                           lower_bound=0.01)  # fmt: skip
CONFIG = ConfigFlag("finetune", "Recipe NAME[:ARG] or PATH.py[:ARG] (default: finetune).",
                    prog="panns-keras finetune", module_name=__name__)  # fmt: skip


def main(argv, verb="finetune"):
    if len(argv) > 1:
        raise UsageError(f"{argv[1]}: unexpected argument (use --data=...)")
    if _ARCH.value:
        raise UsageError(
            "--arch: finetune starts from a model (--model=DIR|.keras|.pth); to "
            "train an architecture from scratch use `panns-keras train`"
        )
    config = CONFIG.value
    if _MODEL.value:
        config.model.init = _MODEL.value
    if _MODE.value:
        config.model.mode = _MODE.value
    if CONFIG.print_requested():
        print(CONFIG.describe(config))
        return 0
    for name, holder in (("data", _DATA), ("out", _OUT), ("model", _MODEL)):
        if not holder.value:
            raise UsageError(f"--{name}: required")
    for name, holder in (("data", _DATA), ("model", _MODEL)):  # before anything loads
        if not os.path.exists(holder.value):
            raise UserError(f"{holder.value}: no such file or folder (--{name})")
    from panns_keras.train.finetune import finetune

    res = finetune(_DATA.value, _OUT.value, config, folds=_FOLDS.value,
                   clip_seconds=_CLIP.value)  # fmt: skip
    for s in res["splits"]:
        shown = ", ".join(f"{k} {s[k]:.4f}" for k in ("accuracy", "mAP") if k in s)
        print(f"{s['split']}: {shown or 'trained (no held-out fold)'}")
    if res["mean"]:
        shown = ", ".join(f"{k} {res['mean'][k]:.4f}" for k in ("accuracy", "mAP")
                          if k in res["mean"])  # fmt: skip
        print(f"mean over {len(res['splits'])} split(s): {shown}")
    return 0
