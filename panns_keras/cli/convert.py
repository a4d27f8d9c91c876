"""panns-keras convert PATH.pth [--model cnn14] --out DIR"""

from __future__ import annotations

from absl import flags

from panns_keras.errors import UserError

_MODEL = flags.DEFINE_string(
    "model", None, "Registry or reference model name; inferred from the file name if omitted "
    "(e.g. 'Cnn14_mAP=0.431.pth' -> cnn14).")  # fmt: skip
_OUT = flags.DEFINE_string("out", None, "Output model directory.")
_LABELS = flags.DEFINE_string(
    "labels", None, "index,mid,display_name CSV (default: the bundled AudioSet 527 classes).")


def main(argv, verb="convert"):
    from panns_keras.convert.converter import convert_checkpoint

    paths = argv[1:]
    if len(paths) != 1:
        raise UserError("give exactly one checkpoint path: panns-keras convert PATH.pth --out DIR")
    if not _OUT.value:
        raise UserError("--out DIR is required")
    out = convert_checkpoint(paths[0], _OUT.value, _MODEL.value, _LABELS.value)
    print(f"converted {paths[0]} -> {out}")
    return 0
