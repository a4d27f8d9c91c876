"""Name or path -> a local model file or folder: file work only (find, download, verify, cache).

``resolve("models/cnn14")`` returns the path unchanged (a local path always wins);
``resolve("cnn14", convert=...)`` returns the cached model directory of preset ``cnn14``,
downloading and checking the checkpoint and having it converted first if it is not cached yet.
The conversion (a PyTorch checkpoint -> a model directory) is model code, so the caller passes
it down (:func:`panns_keras.models.saving.resolve` does); this package imports no model code.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from absl import logging

from panns_keras.errors import UserError
from panns_keras.presets import cache, download, table

OFFLINE_ENV = "PANNS_KERAS_OFFLINE"


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _size_text(preset: table.Preset) -> str:
    if preset.size:
        return f"{preset.size / 1e6:.0f} MB"
    return f"about {preset.approx_mb:.0f} MB" if preset.approx_mb else "size unknown"


def model_path(preset: table.Preset) -> Path:
    """Where the loadable model of ``preset`` is (once cached)."""
    if preset.kind != "pth" and preset.path is not None:
        return Path(preset.path)
    folder = cache.preset_dir(preset.name)
    return folder / preset.file if preset.kind == "keras" else folder / cache.MODEL_DIR


def checkpoint_path(preset: table.Preset) -> Path:
    """Where the downloaded file of ``preset`` goes (the offline message names it)."""
    return cache.preset_dir(preset.name) / preset.file


def is_cached(preset: table.Preset) -> bool:
    """Whether loading ``preset`` needs neither the network nor a conversion."""
    if preset.kind != "pth" and preset.path is not None:
        return Path(preset.path).exists()
    marker = cache.read_marker(preset.name)
    if marker is None or marker.get("key") != preset.key():
        return False
    target = model_path(preset)
    return target.is_file() if preset.kind == "keras" else (target / "config.json").is_file()


def _offline_message(preset: table.Preset, why: str) -> str:
    return (
        f"{preset.name}: {why}; download {preset.location} ({_size_text(preset)}) and "
        f"place it at {checkpoint_path(preset)}"
    )


def _fetch_file(preset: table.Preset) -> dict:
    """The checked checkpoint in the cache (downloaded / copied if missing); its digests."""
    dest = checkpoint_path(preset)
    expect = {"md5": preset.md5, "sha256": preset.sha256, "size": preset.size}
    if dest.is_file():  # placed by hand (offline) or left by an interrupted conversion
        try:
            return download.verify(dest, dest.name, **expect)
        except UserError:
            if offline() or preset.url is None:
                raise
            logging.warning("%s: does not match the preset; downloading it again", dest)
            dest.unlink()
    part = dest.with_name(dest.name + ".part")
    if preset.url is None:
        download.copy_local(preset.path, part)
    elif offline():
        raise UserError(_offline_message(preset, f"not cached and {OFFLINE_ENV}=1"))
    else:
        try:
            download.download(preset.url, part, desc=f"download {preset.file}")
        except download.DownloadError as e:
            raise UserError(_offline_message(preset, f"cannot download ({e})")) from None
    try:
        digests = download.verify(part, preset.file, **expect)
    except UserError:
        part.unlink(missing_ok=True)
        raise
    if not (preset.md5 or preset.sha256):
        logging.warning(
            "%s: no published checksum to check; its sha256 is %s", preset.file, digests["sha256"]
        )
    os.replace(part, dest)
    return digests


def fetch(preset: table.Preset, convert=None) -> Path:
    """The loadable model of ``preset``: fetched, checked and converted once, then cached.

    ``convert(preset, checkpoint, out_dir)`` writes the model directory of a PyTorch
    checkpoint (``preset.kind == "pth"``); it runs under the preset's cache lock.
    """
    if is_cached(preset):
        return model_path(preset)
    if preset.kind == "dir":
        raise UserError(f"{preset.path}: preset {preset.name}'s model directory not found")
    if preset.kind == "pth" and convert is None:
        raise ValueError(f"preset {preset.name} is a PyTorch checkpoint: pass convert=")
    folder = cache.preset_dir(preset.name)

    def waiting():
        print(
            f"panns-keras: waiting for another process fetching preset {preset.name}",
            file=sys.stderr,
        )

    with cache.lock(preset.name, on_wait=waiting):
        if is_cached(preset):  # fetched by the process we waited for
            return model_path(preset)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / cache.MARKER).unlink(missing_ok=True)
        try:
            digests = _fetch_file(preset)
            if preset.kind == "pth":
                try:
                    convert(preset, checkpoint_path(preset), model_path(preset))
                except UserError:  # not a usable checkpoint: do not keep it
                    checkpoint_path(preset).unlink(missing_ok=True)
                    raise
        except BaseException:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()  # nothing cached: no empty folder either
            raise
        cache.write_marker(
            preset.name,
            {
                "name": preset.name,
                "key": preset.key(),
                "source": preset.location,
                "digests": digests,
            },
        )
    return model_path(preset)


def resolve(model, tables: list[str] | None = None, convert=None):
    """``model`` unchanged if it is not a string / path, or a path that exists, or not a
    preset name; else the cached model of that preset (see :func:`fetch`, which takes
    ``convert``)."""
    if not isinstance(model, (str, os.PathLike)):
        return model
    text = os.fspath(model)
    if not text or os.path.exists(text):
        return model
    preset = table.find(text, tables)
    if preset is None:
        return model
    return str(fetch(preset, convert))
