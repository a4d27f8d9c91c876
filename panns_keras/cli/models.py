"""panns-keras models [--presets TABLE.json]

Lists the architectures (build_model / train by name) and the pretrained presets
(load_model("cnn14"), --model cnn14): the paper's mAP, the file's size, and whether each
preset is cached. Presets are downloaded, checked and converted on first use into
PANNS_KERAS_HOME (default: the user cache folder); PANNS_KERAS_PRESETS adds a JSON table
of your own, PANNS_KERAS_PRESET_BASE_URL points the built-in ones at a mirror and
PANNS_KERAS_OFFLINE=1 never downloads.
"""

from __future__ import annotations

import os

from absl import flags

from panns_keras.errors import UserError

_PRESETS = flags.DEFINE_list(
    "presets", None, "JSON preset table(s) of your own, added to PANNS_KERAS_PRESETS's."
)


def _mb(preset) -> str:
    if preset.size:
        return f"{preset.size / 1e6:.0f} MB"
    return f"~{preset.approx_mb:.0f} MB" if preset.approx_mb else "?"


def main(argv, verb="models"):
    from panns_keras.models.registry import MODEL_SPECS
    from panns_keras.presets import cache, is_cached, table

    if len(argv) > 1:
        raise UserError(f"{argv[1]}: unexpected argument (panns-keras models takes no files)")
    env = [t for t in os.environ.get(table.TABLES_ENV, "").split(os.pathsep) if t]
    presets = table.presets(env + list(_PRESETS.value or []))
    by_arch: dict[str, list[str]] = {}
    for p in presets.values():
        by_arch.setdefault(p.arch or "", []).append(p.name)
    print(f"architectures ({len(MODEL_SPECS)}; build_model(NAME), train --config=audioset:NAME)")
    print(f"  {'name':<26} {'reference':<26} {'paper mAP':<10} presets")
    for name, spec in sorted(MODEL_SPECS.items()):
        map_ = table.PAPER_MAP.get(name)
        shown = f"{map_:.3f}" if map_ is not None else "-"
        print(
            f"  {name:<26} {spec.reference_name:<26} {shown:<10} "
            f"{', '.join(by_arch.get(name, [])) or '-'}"
        )
    print(f"\npresets ({len(presets)}; load_model(NAME), --model NAME; cache: {cache.home()})")
    print(f"  {'name':<26} {'architecture':<26} {'mAP':<6} {'size':<8} {'cached':<7} source")
    for p in presets.values():
        shown = f"{p.map:.3f}" if p.map is not None else "-"
        cached = "yes" if is_cached(p) else "no"
        print(
            f"  {p.name:<26} {p.arch or '(from file)':<26} {shown:<6} {_mb(p):<8} "
            f"{cached:<7} {p.location}"
        )
    print(
        f"\nbuilt-in presets: Zenodo record {table.ZENODO_RECORD}; md5s from a third-party "
        "listing (not verified here); sizes marked ~ are estimates"
    )
    return 0
