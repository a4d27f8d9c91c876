"""``panns-keras <verb> [flags]``: one entry point; each verb is an absl program.

Only the chosen verb's module is imported, so its absl flags are the only ones defined.
Every user mistake ends the run with one line on stderr,
``panns-keras VERB: error: THING: PROBLEM`` (a :class:`~panns_keras.errors.UserError`, a
bad or unknown flag), and no traceback. Quiet by default: warnings and errors only;
``--verbosity=0`` adds absl INFO lines and TensorFlow's own log lines.

Exit codes (the rule every verb follows):
  0  success
  2  usage: an unknown verb or flag, a flag value out of its bounds, a missing required
     flag, a bad --config or --config.FIELD override (errors.UsageError); nothing was run
  1  some inputs failed: a file, model or data set that cannot be used (errors.UserError);
     verbs that take several inputs (tag, sed, embed) still process the others
  130 interrupted (Ctrl-C)

``panns-keras VERB --help`` shows the verb's flags (``--config=SPEC --help``: also the
config's fields), ``--helpfull`` adds absl's own flags; ``panns-keras --helpfull`` lists
every verb with its synopsis.
"""

from __future__ import annotations

import importlib
import importlib.util
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
    "teach": ("panns_keras.cli.teach", "teacher logits over prepared shards (distillation)"),
    "models": ("panns_keras.cli.models", "architectures and pretrained presets (cached or not)"),
}
QUIET_VERBOSITY = -1  # absl: warnings and errors


def _available() -> dict[str, tuple[str, str]]:
    return {v: m for v, m in VERBS.items() if importlib.util.find_spec(m[0]) is not None}


def usage() -> str:
    lines = [
        "usage: panns-keras <verb> [flags]   (panns-keras <verb> --help for its flags)",
        "       panns-keras --version",
        "",
    ]
    lines += [f"  {verb:<9} {help_}" for verb, (_, help_) in _available().items()]
    return "\n".join(lines)


def _synopsis(module_name: str) -> str:
    """The first paragraph of a verb module's docstring, read without importing it (two verb
    modules may define the same flag names)."""
    import ast

    origin = importlib.util.find_spec(module_name).origin
    with open(origin, encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
    return doc.split("\n\n")[0]


def helpfull() -> str:
    lines = [usage(), "", "verbs (panns-keras VERB --help: its flags; --helpfull: also absl's):"]
    seen = set()
    for module_name, _ in _available().values():
        if module_name in seen:
            continue
        seen.add(module_name)
        lines += ["", *(f"  {line}" for line in _synopsis(module_name).splitlines())]
    return "\n".join(lines)


def version() -> str:
    from panns_keras import __version__

    return __version__


def _flags_parser(prog: str):
    """absl's parser, with a bad or unknown flag as one line instead of absl's two."""
    from absl import flags

    def parse(argv):
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            message = str(e).removeprefix("flag ")  # "--top_k=-1: -1 is not a positive ..."
            if message.startswith("Unknown command line flag"):
                name = message.split("'")[1] if "'" in message else message
                message = f"--{name}: unknown flag (see {prog} --help)"
            print(f"{prog}: error: {message}", file=sys.stderr)
            sys.exit(2)

    return parse


def _verb_help(module, verb: str, config, args: list[str]) -> str:
    """The verb's own help: its docstring and flags (``help_for(verb)`` where one module serves
    several verbs), then, with a config, the config's fields and values."""
    from absl import flags

    if hasattr(module, "help_for"):
        text = module.help_for(verb)
    else:
        doc = (module.__doc__ or "").strip()
        helps = [flags.FLAGS.module_help(m) for m in (module, *getattr(module, "HELP_MODULES", ()))]
        text = f"{doc}\n\nflags:\n" + "\n".join(h for h in helps if h.strip())
    spec = config.spec_in(args) if config is not None else None
    if spec:
        from panns_keras import configs
        from panns_keras.cli.configflag import format_fields

        loaded = config.load(spec)
        text += (
            f"\n\nconfig fields of --{config.name}={spec} ({configs.resolve(spec)[0]}), "
            f"each settable as --{config.name}.FIELD=VALUE:\n{format_fields(loaded)}"
        )
    elif config is not None:
        text += (
            f"\n\n`panns-keras {verb} --{config.name}=SPEC --help` lists a config's fields "
            "with their values."
        )
    return text


def _quiet_logging(prog: str):
    """absl warnings as ``panns-keras VERB: warning: ...`` (no timestamp / thread prefix);
    returns the formatter it replaced."""
    import logging as std_logging

    from absl import logging

    class Plain(std_logging.Formatter):
        def format(self, record):
            level = record.levelname.lower()
            return f"{prog}: {level}: {record.getMessage()}"

    handler = logging.get_absl_handler()
    previous = handler.formatter
    handler.setFormatter(Plain())
    return previous


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) >= 2 and argv[1] in ("--version", "-V", "version"):
        print(f"panns-keras {version()}")
        return 0
    if len(argv) >= 2 and argv[1] == "--helpfull":
        print(helpfull())
        return 0
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(usage())
        return 0 if len(argv) >= 2 else 2
    verb = argv[1]
    verbs = _available()
    if verb not in verbs:
        import difflib

        close = difflib.get_close_matches(verb, list(verbs), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        print(f"panns-keras: error: {verb}: unknown verb{hint}\n\n{usage()}", file=sys.stderr)
        return 2
    prog = f"panns-keras {verb}"

    from panns_keras import flagnames
    from panns_keras.cli import quiet

    args = flagnames.rewrite(verb, argv[2:])
    verbosity = quiet.verbosity_of(args)
    if verbosity is None:
        verbosity = QUIET_VERBOSITY
        args = [f"--verbosity={QUIET_VERBOSITY}", *args]
    quiet.setup(verbosity)  # before anything imports TensorFlow
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if verbosity < 0 else "0")
    module = importlib.import_module(verbs[verb][0])
    from absl import app

    from panns_keras.errors import UsageError, UserError

    config = getattr(module, "CONFIG", None)  # a configflag.ConfigFlag
    try:
        if config is not None:
            args = config.take_overrides(args)
        if any(a in ("-h", "--help", "-help", "--helpshort") for a in args):
            print(_verb_help(module, verb, config, args))
            return 0
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2

    def run(args):
        previous = _quiet_logging(prog) if verbosity < 0 else None
        try:
            return module.main(args, verb=verb) or 0
        except UserError as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            return getattr(e, "exit_code", 2 if isinstance(e, UsageError) else 1)
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130
        finally:
            if previous is not None:  # main() may be called in-process (tests)
                from absl import logging

                logging.get_absl_handler().setFormatter(previous)

    try:
        app.run(lambda a: sys.exit(run(a)), argv=[prog, *args], flags_parser=_flags_parser(prog))
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
