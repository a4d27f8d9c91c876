"""Training recipes that ship with the package, chosen the big_vision way.

This folder (``configs/`` in the repository) is installed as the package
``panns_keras.configs`` (setup.py's ``package_dir``; one copy on disk, an editable install
maps it too). ``--config=audioset:cnn14`` names ``configs/audioset.py`` with the argument
``cnn14`` from any directory; ``--config=path/to/my_recipe.py:arg`` loads a file of your own.
Each file defines ``get_config(arg=None)`` returning an ``ml_collections.ConfigDict`` built
on :func:`panns_keras.train.config.base_config`.

Example:
    >>> from panns_keras import configs
    >>> configs.names()
    ['audioset', 'audioset_balanced', 'demo', 'finetune']
    >>> configs.get_config("audioset:cnn14").train.batch_size
    32
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

from panns_keras.errors import UserError

_DIR = Path(__file__).resolve().parent


def names() -> list[str]:
    """The packaged recipe names."""
    return sorted(p.stem for p in _DIR.glob("*.py") if not p.stem.startswith("_"))


def resolve(spec: str) -> tuple[str, str | None]:
    """``NAME[:ARG]`` or ``PATH.py[:ARG]`` -> (file path, ARG or None).

    A name of a packaged recipe wins unless a file of that exact path exists; the old
    checkout spelling ``configs/NAME.py`` still finds the packaged file.

    Raises:
        UserError: neither an existing file nor a packaged recipe name.
    """
    path, sep, arg = spec.partition(":")
    arg = arg if sep else None
    if os.path.isfile(path):
        return path, arg
    stem = Path(path).stem
    packaged = path in names() or (Path(path).parent.name == "configs" and stem in names())
    if packaged:
        return str(_DIR / f"{stem}.py"), arg
    raise UserError(
        f"{path}: no such config file or packaged recipe (packaged: {', '.join(names())}; "
        "or give a path to a .py file with get_config(arg))"
    )


def resolve_flag(spec: str) -> str:
    """The ``--config`` value ml_collections can load: ``FILE.py[:ARG]``."""
    path, arg = resolve(spec)
    return path if arg is None else f"{path}:{arg}"


def get_config(spec: str):
    """Loads ``NAME[:ARG]`` or ``PATH.py[:ARG]`` and returns its ``get_config(ARG)``."""
    path, arg = resolve(spec)
    if Path(path).parent == _DIR:
        module = importlib.import_module(f"{__name__}.{Path(path).stem}")
    else:
        spec_ = importlib.util.spec_from_file_location(f"_panns_config_{Path(path).stem}", path)
        module = importlib.util.module_from_spec(spec_)
        spec_.loader.exec_module(module)
    return module.get_config() if arg is None else module.get_config(arg)
