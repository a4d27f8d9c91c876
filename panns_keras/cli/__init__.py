"""``panns-keras <verb> [flags]``: one entry point; each verb is an absl program.

Only the chosen verb's module is imported, so its absl flags are the only ones defined.
A :class:`~panns_keras.errors.UserError` is printed as one line (no traceback).
"""

from __future__ import annotations

import importlib
import os
import sys

VERBS = {
    "convert": ("panns_keras.cli.convert", "PANNs .pth checkpoint -> model directory"),
    "prepare": ("panns_keras.cli.prepare", "audio + labels -> sharded TFRecords"),
    "train": ("panns_keras.cli.train", "train a model from a config"),
    "evaluate": ("panns_keras.cli.evaluate", "mAP / AUC / d-prime on eval TFRecords"),
    "export": ("panns_keras.cli.export", "SavedModel / TFLite / ONNX export"),
    "tag": ("panns_keras.cli.infer", "top-k labels for audio files"),
    "sed": ("panns_keras.cli.infer", "sound event detection on an audio file"),
    "embed": ("panns_keras.cli.infer", "clip embeddings to .npy"),
    "finetune": ("panns_keras.cli.finetune", "transfer learning on a new dataset"),
}


def _available() -> dict[str, tuple[str, str]]:
    return {v: m for v, m in VERBS.items() if importlib.util.find_spec(m[0]) is not None}


def usage() -> str:
    lines = ["usage: panns-keras <verb> [flags]   (panns-keras <verb> --help for its flags)", ""]
    lines += [f"  {verb:<9} {help_}" for verb, (_, help_) in _available().items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(usage())
        return 0 if len(argv) >= 2 else 2
    verb = argv[1]
    verbs = _available()
    if verb not in verbs:
        print(f"panns-keras: error: unknown verb {verb!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(verbs[verb][0])
    from absl import app, flags

    if any(a in ("-h", "--help", "-help", "--helpshort") for a in argv[2:]):
        doc = (module.__doc__ or "").strip()
        helps = [flags.FLAGS.module_help(m) for m in (module, *getattr(module, "HELP_MODULES", ()))]
        print(f"{doc}\n\nflags:\n" + "\n".join(h for h in helps if h.strip()))
        return 0

    from panns_keras.errors import UserError

    def run(args):
        try:
            return module.main(args, verb=verb) or 0
        except UserError as e:
            print(f"panns-keras {verb}: error: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"panns-keras {verb}: interrupted", file=sys.stderr)
            return 130

    try:
        app.run(lambda args: sys.exit(run(args)), argv=[f"panns-keras {verb}"] + argv[2:])
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
