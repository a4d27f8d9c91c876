"""The built-in preset table against the issue's list and the reference (presets/table.py)."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest

from panns_keras.models.registry import MODEL_SPECS, infer_model_name
from panns_keras.presets import table

# Issue 22's list of the released checkpoints of Zenodo record 3987831 (file stem -> mAP).
RELEASED = {
    "Cnn14_mAP=0.431": 0.431,
    "Cnn14_16k_mAP=0.438": 0.438,
    "Cnn14_8k_mAP=0.416": 0.416,
    "Cnn14_DecisionLevelMax_mAP=0.385": 0.385,
    "Cnn14_DecisionLevelAtt_mAP=0.425": 0.425,
    "Cnn6_mAP=0.343": 0.343,
    "Cnn10_mAP=0.380": 0.380,
    "ResNet22_mAP=0.430": 0.430,
    "ResNet38_mAP=0.434": 0.434,
    "ResNet54_mAP=0.429": 0.429,
    "MobileNetV1_mAP=0.389": 0.389,
    "MobileNetV2_mAP=0.383": 0.383,
    "Res1dNet31_mAP=0.365": 0.365,
    "Res1dNet51_mAP=0.355": 0.355,
    "Wavegram_Cnn14_mAP=0.389": 0.389,
    "Wavegram_Logmel_Cnn14_mAP=0.439": 0.439,
}
# The third-party md5 listing quoted in the issue and the reference notes (unverified).
MD5 = {
    "cnn14": "541141fa2ee191a88f24a3219fff024e",
    "cnn10": "bfb1f1f9968938fa8ef4012b8471f5f6",
    "cnn6": "e25e26b84585b14c7754c91e48efc9be",
    "resnet22": "cf36d413096793c4e15dc752a3abd599",
    "resnet38": "bf12f36aaabac4e0855e22d3c3239c1b",
    "resnet54": "4f1f1406d37a29e2379916885e18c5f3",
    "wavegram_cnn14": "1e3506ab640371e0b5a417b15fd66d21",
    "wavegram_logmel_cnn14": "17fa9ab65af3c0eb5ffbc5f65552c4e1",
    "cnn14_decision_level_att": "c8281ca2b9967244b91d557aa941e8ca",
}


@pytest.fixture(autouse=True)
def _builtin_only(monkeypatch):
    monkeypatch.delenv("PANNS_KERAS_PRESETS", raising=False)
    monkeypatch.delenv("PANNS_KERAS_PRESET_BASE_URL", raising=False)


def test_one_preset_per_released_checkpoint():
    presets = {n: p for n, p in table.presets().items() if n in table.BUILTIN}  # PANNs
    assert {p.file.removesuffix(".pth"): p.map for p in presets.values()} == RELEASED
    assert {n: p.md5 for n, p in presets.items() if p.md5} == MD5
    for name, p in presets.items():
        # the short name is the architecture's registry name, which the file name gives
        assert p.arch == name and p.arch in MODEL_SPECS
        assert infer_model_name(p.file) == p.arch
        assert unquote(p.url) == f"https://zenodo.org/records/3987831/files/{p.file}?download=1"
        assert p.approx_mb and p.frontend
        assert ("third-party listing, not verified" in p.note) == (p.md5 is not None)
        # the paper's Table XII mAP where the paper lists the system
        if name in table.PAPER_MAP:
            assert p.map == table.PAPER_MAP[name]


def test_sizes_follow_the_reference_parameter_counts():
    # 4 bytes per state-dict parameter of the reference code (its section 11 "all params")
    counts = {
        "cnn14": 81_837_071,
        "cnn6": 5_920_911,
        "resnet54": 105_401_615,
        "wavegram_logmel_cnn14": 82_148_943,
        "mobilenet_v2": 5_158_799,
    }
    presets = table.presets()
    for name, n in counts.items():
        assert presets[name].approx_mb == round(4 * n / 1e6)


def test_find_by_name_or_file_name():
    assert table.find("cnn14").file == "Cnn14_mAP=0.431.pth"
    assert table.find("Cnn14_mAP=0.431").name == "cnn14"
    assert table.find("Cnn14_16k_mAP=0.438.pth").name == "cnn14_16k"
    assert table.find("CNN14-16K").name == "cnn14_16k"
    assert table.find("cnn14_mel128") is None  # an architecture without released weights


def test_base_url_override(monkeypatch):
    monkeypatch.setenv("PANNS_KERAS_PRESET_BASE_URL", "https://mirror.example.org/panns/")
    url = table.find("resnet38").url
    assert url == "https://mirror.example.org/panns/ResNet38_mAP%3D0.434.pth"
    assert re.fullmatch(r"[\w:/.%-]+", url)


def test_readme_first_example_loads_cnn14_by_name_with_the_tables_facts():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    first = re.search(r"```python\n(.*?)```", text, flags=re.S).group(1)
    cnn14 = table.find("cnn14")
    assert 'panns_keras.load_model("cnn14")' in first
    assert f"downloads {cnn14.file} (about {cnn14.approx_mb} MB)" in first
    assert f"Zenodo\n# record {table.ZENODO_RECORD}" in first
    assert f"lists the {len(table.BUILTIN)}\n# presets" in first
    assert "No command downloads anything" not in text


# EfficientAT's AudioSet checkpoints: models/mn/model.py's and models/dymn/model.py's
# pretrained_models (the first of each name; name -> file), and the README table's mAP.
EFFICIENTAT_RELEASED = {
    "mn01_as": "mn01_as_mAP_298.pt",
    "mn02_as": "mn02_as_mAP_378.pt",
    "mn04_as": "mn04_as_mAP_432.pt",
    "mn05_as": "mn05_as_mAP_443.pt",
    "mn10_as": "mn10_as_mAP_471.pt",
    "mn20_as": "mn20_as_mAP_478.pt",
    "mn30_as": "mn30_as_mAP_482.pt",
    "mn40_as": "mn40_as_mAP_484.pt",
    "mn40_as_ext": "mn40_as_ext_mAP_487.pt",
    "mn40_as_no_im_pre": "mn40_as_no_im_pre_mAP_483.pt",
    "mn10_as_hop_5": "mn10_as_hop_5_mAP_475.pt",
    "mn10_as_hop_15": "mn10_as_hop_15_mAP_463.pt",
    "mn10_as_hop_20": "mn10_as_hop_20_mAP_456.pt",
    "mn10_as_hop_25": "mn10_as_hop_25_mAP_447.pt",
    "mn10_as_mels_40": "mn10_as_mels_40_mAP_453.pt",
    "mn10_as_mels_64": "mn10_as_mels_64_mAP_461.pt",
    "mn10_as_mels_256": "mn10_as_mels_256_mAP_474.pt",
    "mn10_as_fc": "mn10_as_fc_mAP_465.pt",
    "mn10_as_fc_s2221": "mn10_as_fc_s2221_mAP_466.pt",
    "mn10_as_fc_s2211": "mn10_as_fc_s2211_mAP_466.pt",
    "dymn04_as": "dymn04_as.pt",
    "dymn10_as": "dymn10_as.pt",
    "dymn20_as": "dymn20_as_mAP_493.pt",
}
README_MAP = {
    "dymn04_as": 0.450,
    "dymn10_as": 0.477,
    "dymn20_as": 0.491,
    "mn04_as": 0.432,
    "mn10_as": 0.471,
    "mn40_as_ext": 0.487,
    "mn10_as_mels_64": 0.461,
}


def test_efficientat_presets_are_the_released_audioset_checkpoints():
    presets = {n: p for n, p in table.presets().items() if n not in table.BUILTIN}
    assert {n: p.file for n, p in presets.items()} == EFFICIENTAT_RELEASED
    for name, p in presets.items():
        assert (
            p.url == f"https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/{p.file}"
        )
        assert p.arch in MODEL_SPECS and MODEL_SPECS[p.arch].reference == "efficientat"
        assert infer_model_name(p.file) == p.arch
        assert p.license == "MIT" and p.md5 is None and p.sha256 is None  # none published
        assert p.params and p.map and p.frontend and "no published checksum" in p.note
        mAP = re.search(r"_mAP_(\d+)", p.file)  # the file name's mAP where it has one
        if mAP and name not in ("dymn20_as",):
            assert p.map == int(mAP.group(1)) / 1000
        if name in README_MAP:
            assert p.map == README_MAP[name]
    assert presets["mn10_as"].params == 4.88 and presets["mn10_as"].macs == 0.54
    assert presets["mn04_as"].params == 0.983 and presets["mn40_as"].macs == 8.03
    assert table.find("mn10_as_mAP_471.pt").name == "mn10_as"
