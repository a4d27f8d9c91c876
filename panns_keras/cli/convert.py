"""panns-keras convert PATH.pth --out DIR [--arch cnn14]

--arch: the architecture (registry or reference name); inferred from the file name if omitted.
"""

from __future__ import annotations

from absl import flags

from panns_keras.errors import UsageError

_ARCH = flags.DEFINE_string(
    "arch",
    None,
    "Registry or reference model name; inferred from the file name if omitted "
    "(e.g. 'Cnn14_mAP=0.431.pth' -> cnn14).",
)
_OUT = flags.DEFINE_string("out", None, "Output model directory.")
_LABELS = flags.DEFINE_string(
    "labels", None, "index,mid,display_name CSV (default: the bundled AudioSet 527 classes)."
)


def main(argv, verb="convert"):
    paths = argv[1:]
    if len(paths) != 1:
        raise UsageError(
            "PATH.pth: give exactly one checkpoint (panns-keras convert PATH.pth --out DIR)"
        )
    if not _OUT.value:
        raise UsageError("--out: required (the model directory to write)")
    from panns_keras.convert.converter import convert_checkpoint  # after the flags are checked

    out = convert_checkpoint(paths[0], _OUT.value, _ARCH.value, _LABELS.value)
    print(f"converted {paths[0]} -> {out}")
    return 0
