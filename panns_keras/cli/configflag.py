"""``--config=SPEC`` with ``--config.a.b=VALUE`` overrides, for the verbs that take a config.

``SPEC`` is a packaged recipe ``NAME[:ARG]`` or a ``PATH.py[:ARG]`` of one's own (see
:mod:`panns_keras.configs`); the default resolves to the packaged recipe from any working
directory. Everything here uses public APIs only: ``--config`` is a plain absl string flag,
the overrides are taken out of the argument list before absl parses it
(:meth:`ConfigFlag.take_overrides`, called by ``panns_keras.cli.main``), and they are set on
the loaded ``ConfigDict`` by item access, each value parsed to the type of the field it
replaces. A field the config lacks, a value of the wrong type or an unknown recipe is a
:class:`~panns_keras.errors.UsageError` (one line, exit code 2).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from absl import flags

from panns_keras.errors import UsageError

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _parse_value(text: str, current):
    """``text`` as the type of ``current`` (a literal when the field is None or a container)."""
    if isinstance(current, bool):
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ValueError("expected true or false")
    if isinstance(current, int):
        return int(text)
    if isinstance(current, float):
        return float(text)
    if isinstance(current, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if current is None:
            return text  # a bare word for a field without a value yet: a string
        raise ValueError(f"expected a Python literal like {current!r}") from None


def fields(config, prefix: str = "") -> Iterator[tuple[str, object]]:
    """``(dotted.path, value)`` for every leaf of a ConfigDict, in key order."""
    for key, value in config.items():
        path = f"{prefix}{key}"
        if hasattr(value, "items") and not isinstance(value, dict):
            yield from fields(value, f"{path}.")
        else:
            yield path, value


def format_fields(config, prefix: str = "--config.") -> str:
    return "\n".join(f"  {prefix}{path}={value!r}" for path, value in fields(config))


class ConfigFlag:
    """The ``--config`` flag of one verb (also defines ``--print_config``)."""

    def __init__(
        self, default: str | None, help_: str, prog: str, module_name: str, name: str = "config"
    ):
        """``module_name``: the verb module's ``__name__`` (its --help lists the two flags)."""
        from panns_keras import configs

        self.name, self.default, self.prog = name, default, prog
        recipes = ", ".join(configs.names())
        self._spec = flags.DEFINE_string(
            name,
            default,
            f"{help_} Packaged recipes: {recipes}. Fields: --{name}.FIELD=VALUE "
            f"(listed by `{prog} --{name}=SPEC --help`).",
            module_name=module_name,
        )
        self._print = flags.DEFINE_boolean(
            "print_config",
            False,
            "Print the resolved config (after every override) and exit.",
            module_name=module_name,
        )
        self.overrides: list[tuple[str, str]] = []
        self._value = None

    def take_overrides(self, args: list[str]) -> list[str]:
        """Removes ``--config.a.b=V`` / ``--config.a.b V`` from ``args``; keeps them in order."""
        out, i, lead = [], 0, f"--{self.name}."
        while i < len(args):
            arg = args[i]
            i += 1
            if arg == "--":
                out += args[i - 1 :]
                break
            if not arg.startswith(lead):
                out.append(arg)
                continue
            path, sep, text = arg[len(lead) :].partition("=")
            if not sep:
                if i >= len(args):
                    raise UsageError(f"{lead}{path}: missing value (--{self.name}.FIELD=VALUE)")
                text, i = args[i], i + 1
            self.overrides.append((path, text))
        return out

    def spec_in(self, args: list[str]) -> str | None:
        """The ``--config`` value in not yet parsed ``args`` (the last one), else the default."""
        spec = self.default
        for i, arg in enumerate(args):
            if arg.startswith(f"--{self.name}="):
                spec = arg.split("=", 1)[1]
            elif arg == f"--{self.name}" and i + 1 < len(args):
                spec = args[i + 1]
        return spec

    def load(self, spec: str | None = None):
        """The config ``spec`` (default: the flag's value) with the overrides applied."""
        from panns_keras import configs
        from panns_keras.errors import UserError

        spec = self._spec.value if spec is None else spec
        if not spec:
            raise UsageError(
                f"--{self.name}: required (a recipe such as audioset:cnn14, or FILE.py[:ARG])"
            )
        try:
            path, _ = configs.resolve(spec)
            config = configs.get_config(spec)
        except UserError as e:
            raise UsageError(str(e)) from None
        for dotted, text in self.overrides:
            self._set(config, dotted, text, path, spec)
        return config

    def _set(self, config, dotted: str, text: str, path: str, spec: str) -> None:
        flag = f"--{self.name}.{dotted}"
        keys = dotted.split(".")
        node = config
        try:
            for key in keys[:-1]:
                node = node[key]
            current = node[keys[-1]]
        except (KeyError, AttributeError, TypeError):
            raise UsageError(
                f"{flag}: no such field in {path} (see {self.prog} "
                f"--{self.name}={spec} --help for the fields)"
            ) from None
        if hasattr(current, "items"):
            raise UsageError(
                f"{flag}: a group of fields, not one (e.g. {flag}."
                f"{next(iter(current.keys()), 'x')}=...)"
            )
        try:
            node[keys[-1]] = _parse_value(text, current)
        except (ValueError, TypeError) as e:
            kind = type(current).__name__
            raise UsageError(f"{flag}={text}: not a valid {kind} ({e})") from None

    @property
    def value(self):
        if self._value is None:
            self._value = self.load()
        return self._value

    def print_requested(self) -> bool:
        return bool(self._print.value)

    def describe(self, config) -> str:
        """The ``--print_config`` text: where the config comes from, then every field."""
        from panns_keras import configs

        path, _ = configs.resolve(self._spec.value)
        shown = " ".join(f"--{self.name}.{p}={t}" for p, t in self.overrides)
        head = f"# --{self.name}={self._spec.value} ({path})" + (f" {shown}" if shown else "")
        return head + "\n" + format_fields(config)
