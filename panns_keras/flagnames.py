"""One meaning per flag name across verbs, and the old spellings for one release.

Every verb uses:
  --model   a model to load (model directory, .keras file, checkpoint; finetune: also a .pth)
  --arch    an architecture to build by registry name (convert, finetune)
  --out     where the output goes (a folder; sed: --out_tsv, a tab-separated events file)

The spellings of release 0.1 are rewritten to the new ones before absl parses the flags,
with a one-line deprecation note on stderr per old flag. They go away in the next release.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

# verb -> {old flag name: new flag name}
RENAMED: dict[str, dict[str, str]] = {
    "prepare": {
        "prepare_output_dir": "out",
        "prepare_name": "name",
        "prepare_sample_rate": "sample_rate",
    },
    "train": {"workdir": "out"},
    "finetune": {
        "workdir": "out",
        "init": "model",
        "steps": "config.train.num_steps",
        "batch_size": "config.train.batch_size",
        "lr": "config.train.learning_rate",
        "schedule": "config.train.schedule",
        "min_lr_ratio": "config.train.min_lr_ratio",
        "base_lr_scale": "config.model.base_lr_scale",
        "hidden": "config.model.mlp_hidden",
        "seed": "config.seed",
        "mixup_alpha": "config.data.mixup_alpha",
    },
    "convert": {"model": "arch"},
    "sed": {"out_csv": "out_tsv"},
}

_MODEL_SUFFIXES = (".pth", ".keras", ".h5", ".pt")


def _looks_like_arch(value: str) -> bool:
    """finetune's old --model NAME: a registry name, not a path to a model or a preset."""
    from panns_keras.errors import UserError
    from panns_keras.presets.table import find

    if os.path.exists(value) or os.sep in value or "/" in value:
        return False
    try:
        preset = find(value)
    except UserError:  # a broken user table is reported when the model loads
        preset = None
    return not (value.lower().endswith(_MODEL_SUFFIXES) or preset)


def _split(arg: str) -> tuple[str, str | None] | None:
    """'--name=value' -> (name, value); '--name' -> (name, None); not a flag -> None."""
    if not arg.startswith("-") or arg in ("-", "--"):
        return None
    body = arg.lstrip("-")
    name, sep, value = body.partition("=")
    return name, (value if sep else None)


def rewrite(verb: str, args: list[str], note: Callable[[str], None] | None = None) -> list[str]:
    """Returns ``args`` with the old flag spellings of ``verb`` replaced by the new ones.

    ``note`` receives one deprecation line per old flag used (default: print to stderr).
    """
    if note is None:

        def note(line: str) -> None:
            print(line, file=sys.stderr)

    renamed = RENAMED.get(verb, {})
    out: list[str] = []
    noted: set[str] = set()
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            out += args[i - 1 :]
            break
        parsed = _split(arg)
        if parsed is None:
            out.append(arg)
            continue
        name, value = parsed
        negated = name.startswith("no") and name[2:] in renamed
        old = name[2:] if negated else name
        new = renamed.get(old)
        if verb == "finetune" and old == "model":
            if value is None and i < len(args):
                value, i = args[i], i + 1
            if value is not None and _looks_like_arch(value):
                new = "arch"
            else:
                out.append(f"--model={value}" if value is not None else arg)
                continue
        if new is None:
            out.append(arg)
            continue
        if old not in noted:
            noted.add(old)
            extra = " (--model now names a model to load)" if new == "arch" else ""
            note(
                f"panns-keras {verb}: note: --{old} is deprecated and goes away in the next "
                f"release; use --{new}{extra}"
            )
        if negated:
            out.append(f"--no{new}")
        elif value is not None:
            out.append(f"--{new}={value}")
        else:
            out.append(f"--{new}")
    return out
