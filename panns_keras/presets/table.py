"""The preset table: pretrained PANNs by short name, plus the user's own tables.

Built-in entries are the released checkpoints of Zenodo record 3987831 (Kong et al., PANNs),
``<Class>_mAP=<x>.pth``. Sources of each field (``BUILD_NOTES.md``, "Presets"):

* file names and mAPs: the reference's README (Cnn14, Cnn14_16k, Cnn14_DecisionLevelMax),
  third-party code that downloads them (Cnn14_8k, Cnn14_DecisionLevelAtt, Cnn6, Cnn10,
  ResNet22/38/54, Wavegram_Cnn14, Wavegram_Logmel_Cnn14) and, for MobileNetV1/V2 and
  Res1dNet31/51, the paper's Table XII mAP with the same naming rule (file names not confirmed);
* ``md5``: a third-party listing, **not verified here** (no checkpoint was downloaded while
  writing this table); entries without one are accepted unverified and their sha256 recorded;
* ``approx_mb``: 4 bytes per state-dict parameter (reference code, front-end tensors included),
  an estimate of the file size, not a measured one.

User tables (``PANNS_KERAS_PRESETS``, one JSON file or several separated by ``os.pathsep``)
add entries or replace built-in ones whole::

    {"presets": {"our_cnn14": {"url": "https://models.example.com/our_cnn14.pth",
                               "sha256": "...", "arch": "cnn14", "labels": "labels.csv",
                               "description": "Cnn14 fine-tuned on our sounds"}}}

``url`` may be ``https://``, ``http://``, ``file://`` or a plain path (relative paths are
relative to the JSON file); a path may also name a model directory or a ``.keras`` file,
used in place. ``PANNS_KERAS_PRESET_BASE_URL`` points the built-in entries at a mirror
holding the same file names.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from urllib.parse import quote, unquote, urlparse
from urllib.request import url2pathname

from panns_keras.errors import UserError

ZENODO_RECORD = "3987831"
DEFAULT_BASE_URL = f"https://zenodo.org/records/{ZENODO_RECORD}/files"
BASE_URL_ENV = "PANNS_KERAS_PRESET_BASE_URL"
TABLES_ENV = "PANNS_KERAS_PRESETS"
MD5_NOTE = "md5 from a third-party listing, not verified here"

# The paper's Table XII mAP of each system (registry name -> mAP), shown by `models`.
PAPER_MAP = {
    "cnn6": 0.343,
    "cnn10": 0.380,
    "cnn14": 0.431,
    "resnet22": 0.430,
    "resnet38": 0.434,
    "resnet54": 0.429,
    "mobilenet_v1": 0.389,
    "mobilenet_v2": 0.383,
    "dainet19": 0.295,
    "leenet11": 0.266,
    "leenet24": 0.336,
    "res1dnet31": 0.365,
    "res1dnet51": 0.355,
    "wavegram_cnn14": 0.389,
    "wavegram_logmel_cnn14": 0.439,
}

_LOGMEL32 = "log-mel, 32 kHz, 64 bins"
# name: (file, architecture, front end, mAP, md5 or None, approx. MB, source of the name)
BUILTIN: dict[str, tuple] = {
    "cnn14": (
        "Cnn14_mAP=0.431.pth",
        "cnn14",
        _LOGMEL32,
        0.431,
        "541141fa2ee191a88f24a3219fff024e",
        327,
        "reference README",
    ),
    "cnn14_16k": (
        "Cnn14_16k_mAP=0.438.pth",
        "cnn14_16k",
        "log-mel, 16 kHz, 64 bins",
        0.438,
        None,
        324,
        "reference README",
    ),
    "cnn14_8k": (
        "Cnn14_8k_mAP=0.416.pth",
        "cnn14_8k",
        "log-mel, 8 kHz, 64 bins",
        0.416,
        None,
        323,
        "third-party code",
    ),
    "cnn14_decision_level_max": (
        "Cnn14_DecisionLevelMax_mAP=0.385.pth",
        "cnn14_decision_level_max",
        _LOGMEL32,
        0.385,
        None,
        327,
        "reference README",
    ),
    "cnn14_decision_level_att": (
        "Cnn14_DecisionLevelAtt_mAP=0.425.pth",
        "cnn14_decision_level_att",
        _LOGMEL32,
        0.425,
        "c8281ca2b9967244b91d557aa941e8ca",
        332,
        "third-party code",
    ),
    "cnn6": (
        "Cnn6_mAP=0.343.pth",
        "cnn6",
        _LOGMEL32,
        0.343,
        "e25e26b84585b14c7754c91e48efc9be",
        24,
        "third-party code",
    ),
    "cnn10": (
        "Cnn10_mAP=0.380.pth",
        "cnn10",
        _LOGMEL32,
        0.380,
        "bfb1f1f9968938fa8ef4012b8471f5f6",
        25,
        "third-party code",
    ),
    "resnet22": (
        "ResNet22_mAP=0.430.pth",
        "resnet22",
        _LOGMEL32,
        0.430,
        "cf36d413096793c4e15dc752a3abd599",
        259,
        "third-party code",
    ),
    "resnet38": (
        "ResNet38_mAP=0.434.pth",
        "resnet38",
        _LOGMEL32,
        0.434,
        "bf12f36aaabac4e0855e22d3c3239c1b",
        299,
        "third-party code",
    ),
    "resnet54": (
        "ResNet54_mAP=0.429.pth",
        "resnet54",
        _LOGMEL32,
        0.429,
        "4f1f1406d37a29e2379916885e18c5f3",
        422,
        "third-party code",
    ),
    "mobilenet_v1": (
        "MobileNetV1_mAP=0.389.pth",
        "mobilenet_v1",
        _LOGMEL32,
        0.389,
        None,
        24,
        "paper Table XII (file name not confirmed)",
    ),
    "mobilenet_v2": (
        "MobileNetV2_mAP=0.383.pth",
        "mobilenet_v2",
        _LOGMEL32,
        0.383,
        None,
        21,
        "paper Table XII (file name not confirmed)",
    ),
    "res1dnet31": (
        "Res1dNet31_mAP=0.365.pth",
        "res1dnet31",
        "waveform, 32 kHz",
        0.365,
        None,
        322,
        "third-party code (older record 3960586)",
    ),
    "res1dnet51": (
        "Res1dNet51_mAP=0.355.pth",
        "res1dnet51",
        "waveform, 32 kHz",
        0.355,
        None,
        426,
        "paper Table XII (file name not confirmed)",
    ),
    "wavegram_cnn14": (
        "Wavegram_Cnn14_mAP=0.389.pth",
        "wavegram_cnn14",
        "wavegram, 32 kHz",
        0.389,
        "1e3506ab640371e0b5a417b15fd66d21",
        324,
        "third-party code",
    ),
    "wavegram_logmel_cnn14": (
        "Wavegram_Logmel_Cnn14_mAP=0.439.pth",
        "wavegram_logmel_cnn14",
        "wavegram + log-mel, 32 kHz, 64 bins",
        0.439,
        "17fa9ab65af3c0eb5ffbc5f65552c4e1",
        329,
        "third-party code",
    ),
}

# EfficientAT (Schmid et al., github.com/fschmid56/EfficientAT): the AudioSet checkpoints of
# its GitHub release v0.0.1, by the names of its models/mn/model.py and models/dymn/model.py
# ``pretrained_models`` (the file names there). mAP, parameters (millions) and MACs (billions,
# 10 s clip) from the reference README's table; for the checkpoints the table does not list,
# the mAP in the file name, the parameter count of the architecture here (the reference's
# own count, tests/models/test_efficientat.py) and no MACs. Licence: the repository's MIT
# licence; the release states no other terms for the weights. No checksum is published: the
# sha256 is recorded on first download.
EFFICIENTAT_BASE_URL = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1"
EFFICIENTAT_LICENSE = "MIT"
_EAT = "EfficientAT log-mel, 32 kHz, {} bins, hop {} ms"
_README = "reference README table"
_FILE_NAME = "mAP from the file name; parameters counted here; MACs not published"
# name: (file, architecture, front end, mAP, params (M), MACs (G) or None, source)
EFFICIENTAT: dict[str, tuple] = {
    "mn01_as": ("mn01_as_mAP_298.pt", "mn01", _EAT.format(128, 10), 0.298, 0.124, None, _FILE_NAME),
    "mn02_as": ("mn02_as_mAP_378.pt", "mn02", _EAT.format(128, 10), 0.378, 0.325, None, _FILE_NAME),
    "mn04_as": ("mn04_as_mAP_432.pt", "mn04", _EAT.format(128, 10), 0.432, 0.983, 0.11, _README),
    "mn05_as": ("mn05_as_mAP_443.pt", "mn05", _EAT.format(128, 10), 0.443, 1.43, 0.16, _README),
    "mn10_as": ("mn10_as_mAP_471.pt", "mn10", _EAT.format(128, 10), 0.471, 4.88, 0.54, _README),
    "mn20_as": ("mn20_as_mAP_478.pt", "mn20", _EAT.format(128, 10), 0.478, 17.91, 2.06, _README),
    "mn30_as": ("mn30_as_mAP_482.pt", "mn30", _EAT.format(128, 10), 0.482, 39.09, 4.55, _README),
    "mn40_as": ("mn40_as_mAP_484.pt", "mn40", _EAT.format(128, 10), 0.484, 68.43, 8.03, _README),
    "mn40_as_ext": (
        "mn40_as_ext_mAP_487.pt",
        "mn40",
        _EAT.format(128, 10),
        0.487,
        68.43,
        8.03,
        _README,
    ),
    "mn40_as_no_im_pre": (
        "mn40_as_no_im_pre_mAP_483.pt",
        "mn40",
        _EAT.format(128, 10),
        0.483,
        68.43,
        8.03,
        _README,
    ),
    "mn10_as_hop_5": (
        "mn10_as_hop_5_mAP_475.pt",
        "mn10_hop_5",
        _EAT.format(128, 5),
        0.475,
        4.88,
        None,
        _FILE_NAME,
    ),
    "mn10_as_hop_15": (
        "mn10_as_hop_15_mAP_463.pt",
        "mn10_hop_15",
        _EAT.format(128, 15),
        0.463,
        4.88,
        0.36,
        _README,
    ),
    "mn10_as_hop_20": (
        "mn10_as_hop_20_mAP_456.pt",
        "mn10_hop_20",
        _EAT.format(128, 20),
        0.456,
        4.88,
        0.27,
        _README,
    ),
    "mn10_as_hop_25": (
        "mn10_as_hop_25_mAP_447.pt",
        "mn10_hop_25",
        _EAT.format(128, 25),
        0.447,
        4.88,
        0.22,
        _README,
    ),
    "mn10_as_mels_40": (
        "mn10_as_mels_40_mAP_453.pt",
        "mn10_mels_40",
        _EAT.format(40, 10),
        0.453,
        4.88,
        0.21,
        _README,
    ),
    "mn10_as_mels_64": (
        "mn10_as_mels_64_mAP_461.pt",
        "mn10_mels_64",
        _EAT.format(64, 10),
        0.461,
        4.88,
        0.27,
        _README,
    ),
    "mn10_as_mels_256": (
        "mn10_as_mels_256_mAP_474.pt",
        "mn10_mels_256",
        _EAT.format(256, 10),
        0.474,
        4.88,
        1.08,
        _README,
    ),
    "mn10_as_fc": (
        "mn10_as_fc_mAP_465.pt",
        "mn10_fc",
        _EAT.format(128, 10),
        0.465,
        3.48,
        None,
        _FILE_NAME,
    ),
    "mn10_as_fc_s2221": (
        "mn10_as_fc_s2221_mAP_466.pt",
        "mn10_fc_s2221",
        _EAT.format(128, 10),
        0.466,
        3.48,
        None,
        _FILE_NAME,
    ),
    "mn10_as_fc_s2211": (
        "mn10_as_fc_s2211_mAP_466.pt",
        "mn10_fc_s2211",
        _EAT.format(128, 10),
        0.466,
        3.48,
        None,
        _FILE_NAME,
    ),
    "dymn04_as": ("dymn04_as.pt", "dymn04", _EAT.format(128, 10), 0.450, 1.97, 0.12, _README),
    "dymn10_as": ("dymn10_as.pt", "dymn10", _EAT.format(128, 10), 0.477, 10.57, 0.58, _README),
    "dymn20_as": (
        "dymn20_as_mAP_493.pt",
        "dymn20",
        _EAT.format(128, 10),
        0.491,
        40.02,
        2.2,
        _README,
    ),
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]*$")
_FIELDS = {
    "url",
    "path",
    "file",
    "md5",
    "sha256",
    "size",
    "arch",
    "architecture",
    "labels",
    "map",
    "frontend",
    "description",
    "approx_mb",
    "params",
    "macs",
    "license",
}


@dataclasses.dataclass(frozen=True)
class Preset:
    """One named pretrained model.

    Attributes:
      name: the short name (``cnn14``).
      file: the file name in the cache (``Cnn14_mAP=0.431.pth``); ``.pth`` files are
        converted, ``.keras`` files and model directories are used as they are.
      url: where to download it (``http(s)://``), or None for a local ``path``.
      path: a local file or model directory, or None for a ``url``.
      arch: registry name of the architecture (None: inferred from ``file``).
      md5, sha256: expected checksums (lower-case hex), where known.
      size: exact size in bytes, where known; approx_mb: a size estimate in MB.
      map: the paper's (or the table author's) mAP; frontend: a short description.
      labels: an ``index,mid,display_name`` CSV (default: AudioSet's 527 classes).
      params: parameters in millions, macs: multiply-accumulates per 10 s clip in billions,
        license: the weights' licence, where the table states them.
      source: ``built-in`` or the JSON table it came from; note: caveats on its fields.
    """

    name: str
    file: str
    url: str | None = None
    path: str | None = None
    arch: str | None = None
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None
    approx_mb: float | None = None
    map: float | None = None
    frontend: str = ""
    labels: str | None = None
    description: str = ""
    source: str = "built-in"
    note: str = ""
    params: float | None = None
    macs: float | None = None
    license: str | None = None

    @property
    def location(self) -> str:
        return self.url or str(self.path)

    @property
    def kind(self) -> str:
        """``pth`` (converted once), ``keras`` (a .keras file) or ``dir`` (a model directory)."""
        if self.file.endswith(".keras"):
            return "keras"
        if self.path is not None and Path(self.path).is_dir():
            return "dir"
        return "pth"

    def key(self) -> dict:
        """What the cached files must have been made from (a changed entry is re-fetched)."""
        return {
            "file": self.file,
            "md5": self.md5,
            "sha256": self.sha256,
            "arch": self.arch,
            "labels": self.labels,
            "size": self.size,
        }


def base_url() -> str:
    return (os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")


def builtin_presets() -> dict[str, Preset]:
    base = base_url()
    query = "?download=1" if base == DEFAULT_BASE_URL else ""
    out = {}
    for name, (file, arch, frontend, map_, md5, mb, origin) in BUILTIN.items():
        note = f"file name: {origin}" + (f"; {MD5_NOTE}" if md5 else "; no published checksum")
        out[name] = Preset(
            name=name,
            file=file,
            url=f"{base}/{quote(file)}{query}",
            arch=arch,
            md5=md5,
            approx_mb=mb,
            map=map_,
            frontend=frontend,
            description=f"{file[:-4]} (Zenodo record {ZENODO_RECORD})",
            note=note,
        )
    eat = os.environ.get(BASE_URL_ENV, "").rstrip("/") or EFFICIENTAT_BASE_URL
    for name, (file, arch, frontend, map_, params, macs, origin) in EFFICIENTAT.items():
        out[name] = Preset(
            name=name,
            file=file,
            url=f"{eat}/{quote(file)}",
            arch=arch,
            approx_mb=round(4 * params, 1),
            map=map_,
            frontend=frontend,
            description=f"EfficientAT {file[:-3]} (GitHub release v0.0.1)",
            note=f"{origin}; no published checksum",
            params=params,
            macs=macs,
            license=EFFICIENTAT_LICENSE,
        )
    return out


def _local(value: str, table_dir: Path) -> str | None:
    """A local path for a ``file://`` URL or a plain path; None for a network URL."""
    parsed = urlparse(value)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        return url2pathname(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # not a Windows drive letter
        raise UserError(
            f"{value}: unsupported URL scheme {parsed.scheme!r} (use https://, "
            "http://, file:// or a path)"
        )
    path = Path(os.path.expanduser(value))
    return str(path if path.is_absolute() else table_dir / path)


def _entry(name: str, raw, table: Path) -> Preset:
    where = f"{table}: preset {name!r}"
    if not isinstance(raw, dict):
        raise UserError(f"{where}: must be an object with a url or path")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise UserError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(_FIELDS)}")
    if not _NAME.match(name):
        raise UserError(f"{where}: names may hold letters, digits and _ . = - only")
    location = raw.get("url") or raw.get("path")
    if not isinstance(location, str) or not location:
        raise UserError(f"{where}: needs a url (https://, http://, file://) or a path")
    local = _local(location, table.parent)
    file = raw.get("file") or Path(unquote(urlparse(location).path)).name or f"{name}.pth"
    if not _NAME.match(str(file)):
        raise UserError(f"{where}: file {file!r} must be a plain file name")
    labels = raw.get("labels")
    if labels is not None:
        labels = _local(str(labels), table.parent)
        if labels is None:
            raise UserError(f"{where}: labels must be a local CSV path, not a URL")
    for digest, length in (("md5", 32), ("sha256", 64)):
        value = raw.get(digest)
        if value is not None and not re.fullmatch(f"[0-9a-fA-F]{{{length}}}", str(value)):
            raise UserError(f"{where}: {digest} must be {length} hex digits")
    return Preset(
        name=name,
        file=file,
        url=None if local else location,
        path=local,
        arch=raw.get("arch") or raw.get("architecture"),
        md5=(raw.get("md5") or "").lower() or None,
        sha256=(raw.get("sha256") or "").lower() or None,
        size=int(raw["size"]) if raw.get("size") is not None else None,
        approx_mb=raw.get("approx_mb"),
        map=raw.get("map"),
        frontend=raw.get("frontend", ""),
        labels=labels,
        description=raw.get("description", ""),
        source=str(table),
        params=raw.get("params"),
        macs=raw.get("macs"),
        license=raw.get("license"),
    )


def read_table(path: str | Path) -> dict[str, Preset]:
    """The entries of one user JSON table (``{"presets": {name: entry}}`` or ``{name: entry}``)."""
    local = _local(str(path), Path.cwd())
    if local is None:
        raise UserError(f"{path}: a preset table must be a local JSON file")
    table = Path(local)
    if not table.is_file():
        raise UserError(f"{table}: preset table not found ({TABLES_ENV})")
    try:
        data = json.loads(table.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{table}: not valid JSON ({e})") from None
    entries = data.get("presets", data) if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise UserError(f'{table}: expected an object {{"presets": {{name: entry}}}}')
    return {name: _entry(name, raw, table) for name, raw in entries.items()}


def presets(tables: list[str] | None = None) -> dict[str, Preset]:
    """Built-in presets, then those of ``tables`` (default: ``PANNS_KERAS_PRESETS``)."""
    out = builtin_presets()
    if tables is None:
        tables = [t for t in os.environ.get(TABLES_ENV, "").split(os.pathsep) if t]
    for table in tables:
        out.update(read_table(table))
    return out


def find(name: str, tables: list[str] | None = None) -> Preset | None:
    """The preset called ``name`` (also its file name, with or without ``.pth``), or None."""
    table = presets(tables)
    if name in table:
        return table[name]
    key = name.strip().lower().replace("-", "_")
    for preset in table.values():
        stem = preset.file.rsplit(".", 1)[0]
        if key in (preset.name.lower(), preset.file.lower(), stem.lower()):
            return preset
    return None
