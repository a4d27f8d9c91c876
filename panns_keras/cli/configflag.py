"""The --config flag's one-line errors, shared by the verbs that take a config (no flags here:
each verb module defines its own, and only the chosen verb's module is imported)."""

from __future__ import annotations

import sys

from ml_collections.config_flags import config_path

from panns_keras.errors import UserError


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
        from panns_keras import configs

        try:
            argument = configs.resolve_flag(argument)
        except UserError as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            sys.exit(2)
        try:
            return original(argument)
        except (AttributeError, KeyError) as e:
            bad = _missing_fields(flag, argument) or [str(e).strip("\"'")]
            fields = ", ".join(f"--{holder.name}.{b}" for b in bad)
            print(f"{prog}: error: {fields}: no such field in {argument} "
                  "(see the config file or --help for the fields)", file=sys.stderr)  # fmt: skip
            sys.exit(2)

    flag._parse = parse
