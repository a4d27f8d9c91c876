"""panns-keras finetune --data=FOLDER|CSV|TFRECORD_DIR --model=MODEL --out=DIR
[--mode=finetune|freeze_l1|freeze_l3|scratch|probe] [--folds=all|a,b|none]
[--config=finetune] [--config.train.num_steps=500 ...]

Transfer learning with the trainer `panns-keras train` uses: --model (a model directory,
.keras file or PANNs .pth) is the initial model (its architecture, sample rate and the
length of the clips it was trained on are the run's), the data's classes get a new head. A
class folder or a path,labels[,fold] CSV is first prepared into OUT/data at the model's
sample rate and clip length (--clip_seconds overrides it; PANNs checkpoints: 10 s); a folder
written by `panns-keras prepare` is read as it is. Progress: one line for the whole run
(split, step, eta); each split's result is printed as it finishes, then the path of
results.json. Each split holds out one
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
import sys
from pathlib import Path

from absl import flags

from panns_keras.cli.configflag import ConfigFlag
from panns_keras.data import formats
from panns_keras.errors import UsageError, UserError

MODES = ("finetune", "freeze_l1", "freeze_l3", "scratch", "probe")
_DATA = flags.DEFINE_string(
    "data",
    None,
    "Class folder, CSV path,labels[,fold], or TFRecord folder written by `panns-keras prepare`.",
)
_OUT = flags.DEFINE_string("out", None, "Output folder (a rerun reuses finished splits).")
_MODEL = flags.DEFINE_string(
    "model",
    None,
    "The initial model: preset name (cnn14), model directory, .keras or PANNs .pth file.",
)
_MODE = flags.DEFINE_enum(
    "mode",
    None,
    MODES,
    "Transfer mode (default: the config's, "
    "finetune); probe = a linear classifier fit to convergence on the "
    "initial model's embeddings.",
)
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
_CLIP = flags.DEFINE_float(
    "clip_seconds",
    None,
    "Clip length when preparing a folder/CSV (default: the length of "
    "the clips --model was trained on; 10 s when the model does not record it).",
    lower_bound=0.01,
)
_TEACHER = flags.DEFINE_string(
    "teacher",
    None,
    "Distil from teacher predictions: a folder written by `panns-keras "
    "teach` over the prepared --data (sets config.data.teacher; the loss weights them by "
    "config.train.distill.weight, 0.9).",
)
CONFIG = ConfigFlag(
    "finetune",
    "Recipe NAME[:ARG] or PATH.py[:ARG] (default: finetune).",
    prog="panns-keras finetune",
    module_name=__name__,
)


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
    if _TEACHER.value:
        config.data.teacher = _TEACHER.value
        if str(config.model.mode) == "probe":
            raise UsageError(
                "--teacher: mode probe fits a linear classifier on labels; distil "
                "with mode finetune, freeze_l1, freeze_l3 or scratch"
            )
    clip_seconds = _from_model(config)
    if CONFIG.print_requested():
        print(CONFIG.describe(config))
        return 0
    for name, holder in (("data", _DATA), ("out", _OUT), ("model", _MODEL)):
        if not holder.value:
            raise UsageError(f"--{name}: required")
    for name, holder in (("data", _DATA), ("model", _MODEL)):  # before anything loads
        if not os.path.exists(holder.value):
            raise UserError(f"{holder.value}: no such file or folder (--{name})")
    from panns_keras.train.finetune import RESULTS, finetune

    res = finetune(
        _DATA.value, _OUT.value, config, folds=_FOLDS.value, clip_seconds=clip_seconds, say=_say
    )
    if res["mean"]:
        shown = ", ".join(
            f"{k} {res['mean'][k]:.4f}" for k in ("accuracy", "mAP") if k in res["mean"]
        )
        print(f"mean over {len(res['splits'])} split(s): {shown}")
    print(f"results: {os.path.join(_OUT.value, RESULTS)}")
    return 0


def _say(line: str) -> None:
    print(line, flush=True)


def _from_model(config) -> float | None:
    """Fills the config with what the run takes from --model and --data (architecture,
    sample rate, clip length, classes), so --print_config shows what will run; returns the
    clip length to prepare --data at (None: the model's own, resolved by finetune)."""
    if not _MODEL.value or not os.path.exists(_MODEL.value):
        return _CLIP.value
    from panns_keras.train.finetune import DEFAULT_CLIP_SECONDS, init_spec

    spec = init_spec(_MODEL.value)
    config.model.name = spec["name"]
    rate, trained = int(spec["sample_rate"]), spec.get("clip_seconds")
    clip = _CLIP.value or trained or DEFAULT_CLIP_SECONDS
    if _CLIP.value and trained and abs(_CLIP.value - trained) > 1e-6:
        print(
            f"panns-keras finetune: note: --clip_seconds {_CLIP.value:g}; the model was "
            f"trained on {trained:g} s clips (the default)",
            file=sys.stderr,
        )
    config.data.sample_rate, config.data.clip_samples = rate, round(clip * rate)
    data = Path(_DATA.value) if _DATA.value else None
    if data is not None and (data / formats.MANIFEST_NAME).is_file():  # prepared: as it is
        manifest = formats.read_manifest(str(data))
        config.data.sample_rate = int(manifest["sample_rate"])
        config.data.clip_samples = int(manifest["clip_samples"])
        config.data.num_classes = int(manifest["num_classes"])
    elif data is not None and data.exists():  # the classes prepare will find (no decoding)
        from panns_keras.data.prepare.inputs import list_class_folders, list_generic_csv

        beside = data.parent / formats.LABELS_NAME
        listing = (
            list_class_folders(str(data))
            if data.is_dir()
            else list_generic_csv(str(data), str(beside) if beside.is_file() else "")
        )
        config.data.num_classes = len(listing.labels)
    return clip
