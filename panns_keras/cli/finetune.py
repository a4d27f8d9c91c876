"""panns-keras finetune --data=FOLDER|CSV|TFRECORD_DIR --out=DIR [--model=MODEL_DIR|.pth]
[--arch=NAME] [--mode=finetune|scratch|freeze_l1|freeze_l3|probe] [--folds=all]

--model: the pretrained model to start from; --arch: the architecture (needed for a .pth whose
name does not tell it, or alone for a randomly initialised base).

Transfer learning of a PANNs model on a new dataset. A folder (one sub-folder per class) or
a path,labels[,fold] CSV is first prepared into OUT/data at the model's sample rate.
Writes OUT/<split>/ (TensorBoard events, split.json, model/) and OUT/results.json.
"""

from __future__ import annotations

from absl import flags

from panns_keras.errors import UserError

_DATA = flags.DEFINE_string("data", None, "Class folder, CSV path,labels[,fold], or TFRecord "
                            "folder written by `panns-keras prepare`.")  # fmt: skip
_OUT = flags.DEFINE_string("out", None, "Output folder (a rerun reuses finished splits).")
_MODEL = flags.DEFINE_string("model", None, "Pretrained model directory or PANNs .pth file.")
_ARCH = flags.DEFINE_string("arch", None, "Architecture name (for a .pth, or a random base).")
_MODE = flags.DEFINE_enum("mode", "finetune",
                          ["finetune", "scratch", "freeze_l1", "freeze_l3", "probe"],
                          "Transfer mode (PANNs paper; probe = freeze_l1 on cached "
                          "embeddings).")  # fmt: skip
_FOLDS = flags.DEFINE_string(
    "folds",
    "",
    "'all' (cross-validation), 'a,b' (these test folds),"
    " 'none' (no test), '' (fold 'test' or a 20% hash holdout).",
)
_STEPS = flags.DEFINE_integer("steps", 200, "Training steps per split.")
_BATCH = flags.DEFINE_integer("batch_size", 16, "Batch size.")
_LR = flags.DEFINE_float("lr", 1e-3, "Head learning rate (Adam).")
_SCHEDULE = flags.DEFINE_enum("schedule", "constant", ["constant", "cosine"],
                              "Learning rate: constant, or cosine decay to lr * "
                              "--min_lr_ratio over --steps.")  # fmt: skip
_MIN_LR = flags.DEFINE_float("min_lr_ratio", 0.05, "Final lr / lr for --schedule=cosine.")
_BASE_LR = flags.DEFINE_float("base_lr_scale", 0.1, "Pretrained base's learning rate = lr * "
                              "this (scratch trains every weight at lr).")  # fmt: skip
_UNFREEZE = flags.DEFINE_integer("unfreeze_after", 0, "Frozen modes: train the base too from "
                                 "this step (0: never).")  # fmt: skip
_MIXUP = flags.DEFINE_float("mixup_alpha", 0.0, "Waveform mixup Beta(alpha, alpha); 0 = off.")
_GAIN = flags.DEFINE_float("gain_db", 0.0, "Random gain in +-dB.")
_SHIFT = flags.DEFINE_float("time_shift", 0.0, "Random circular shift, fraction of the clip.")
_SPECAUG = flags.DEFINE_bool("spec_augment", True, "Base's SpecAugment while the base trains.")
_HIDDEN = flags.DEFINE_integer("hidden", 512, "freeze_l3 MLP width.")
_CLIP = flags.DEFINE_float("clip_seconds", 10.0, "Clip length when preparing a folder/CSV.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")


def main(argv, verb="finetune"):
    from panns_keras.transfer.train import TrainOptions, finetune

    if len(argv) > 1:
        raise UserError(f"{argv[1]}: unexpected argument (use --data=...)")
    for name, holder in (("data", _DATA), ("out", _OUT)):
        if not holder.value:
            raise UserError(f"--{name}: required")
    opts = TrainOptions(
        steps=_STEPS.value, batch_size=_BATCH.value, lr=_LR.value,
        schedule=_SCHEDULE.value, min_lr_ratio=_MIN_LR.value,
        base_lr_scale=_BASE_LR.value, unfreeze_after=_UNFREEZE.value,
        mixup_alpha=_MIXUP.value, gain_db=_GAIN.value, time_shift=_SHIFT.value,
        spec_augment=_SPECAUG.value, hidden=_HIDDEN.value, seed=_SEED.value,
    )  # fmt: skip
    res = finetune(_DATA.value, _OUT.value, init=_MODEL.value, model_name=_ARCH.value,
                   mode=_MODE.value, folds=_FOLDS.value, clip_seconds=_CLIP.value,
                   options=opts)  # fmt: skip
    metric = res["metric"]
    for s in res["splits"]:
        value = s.get(metric)
        shown = "n/a" if value is None else f"{value:.4f}"
        print(f"{s['split']}: {metric} {shown} ({s['train_clips']} train / {s['test_clips']} "
              f"test clips, {s['train_s']:.1f} s) -> {s['model_dir']}")  # fmt: skip
    if res["mean"] is not None:
        print(f"mean {metric}: {res['mean']:.4f} over {len(res['splits'])} split(s)")
    return 0
