"""One table from model name to :class:`ModelSpec`; variants via ``dataclasses.replace``."""

from __future__ import annotations

import difflib
import re
from dataclasses import replace

from panns_keras.errors import UserError
from panns_keras.models.spec import (
    ConvNetSpec,
    DaiNetSpec,
    DyMNSpec,
    EATLogMelSpec,
    HeadSpec,
    LeeNetSpec,
    LogMelSpec,
    MNSpec,
    MobileNetV1Spec,
    MobileNetV2Spec,
    ModelSpec,
    Res1dNetSpec,
    ResNetSpec,
    SpecAugmentSpec,
    WavegramSpec,
    make_divisible,
)

_CNN14 = ModelSpec(name="cnn14", reference_name="Cnn14", family="convnet", backbone=ConvNetSpec())
_RESNET = ModelSpec(name="resnet22", reference_name="ResNet22", family="resnet",
                    backbone=ResNetSpec())  # fmt: skip
_WAVE = dict(frontend=None, spec_augment=None, mixup_domain="waveform")
_WAVEGRAM_TRUNK = ConvNetSpec(first_block=2)


def _specs() -> dict[str, ModelSpec]:
    s: list[ModelSpec] = [
        _CNN14,
        replace(_CNN14, name="cnn14_no_specaug", reference_name="Cnn14_no_specaug",
                spec_augment=None),
        replace(_CNN14, name="cnn14_no_dropout", reference_name="Cnn14_no_dropout",
                conv_dropout=0.0),
        replace(_CNN14, name="cnn14_mixup_time_domain",
                reference_name="Cnn14_mixup_time_domain", mixup_domain="waveform"),
        replace(_CNN14, name="cnn14_16k", reference_name="Cnn14_16k", sample_rate=16000,
                frontend=LogMelSpec(16000, 512, 160, 64, 50, 8000)),
        replace(_CNN14, name="cnn14_8k", reference_name="Cnn14_8k", sample_rate=8000,
                frontend=LogMelSpec(8000, 256, 80, 64, 50, 4000)),
        replace(_CNN14, name="cnn14_mel32", reference_name="Cnn14_mel32",
                frontend=LogMelSpec(mel_bins=32), spec_augment=SpecAugmentSpec(freq_drop_width=4)),
        replace(_CNN14, name="cnn14_mel128", reference_name="Cnn14_mel128",
                frontend=LogMelSpec(mel_bins=128),
                spec_augment=SpecAugmentSpec(freq_drop_width=16)),
        *(replace(_CNN14, name=f"cnn14_emb{e}", reference_name=f"Cnn14_emb{e}",
                  head=HeadSpec(embedding_size=e)) for e in (512, 128, 32)),
        *(replace(_CNN14, name=f"cnn14_decision_level_{k}",
                  reference_name=f"Cnn14_DecisionLevel{k.capitalize()}",
                  head=HeadSpec(kind=f"decision_{k}"),
                  unused=("att_block.bn_att",) if k == "att" else ())
          for k in ("max", "avg", "att")),
        ModelSpec(name="cnn6", reference_name="Cnn6", family="convnet",
                  backbone=ConvNetSpec(widths=(64, 128, 256, 512), pools=((2, 2),) * 4, kernel=5),
                  head=HeadSpec(embedding_size=512)),
        ModelSpec(name="cnn10", reference_name="Cnn10", family="convnet",
                  backbone=ConvNetSpec(widths=(64, 128, 256, 512), pools=((2, 2),) * 4),
                  head=HeadSpec(embedding_size=512)),
        _RESNET,
        replace(_RESNET, name="resnet38", reference_name="ResNet38",
                backbone=ResNetSpec(layers=(3, 4, 6, 3))),
        replace(_RESNET, name="resnet54", reference_name="ResNet54",
                backbone=ResNetSpec(block="bottleneck", layers=(3, 4, 6, 3))),
        ModelSpec(name="mobilenet_v1", reference_name="MobileNetV1", family="mobilenet_v1",
                  backbone=MobileNetV1Spec(), head=HeadSpec(embedding_size=1024),
                  conv_dropout=0.0),
        ModelSpec(name="mobilenet_v2", reference_name="MobileNetV2", family="mobilenet_v2",
                  backbone=MobileNetV2Spec(),
                  head=HeadSpec(embedding_size=1024, pre_dropout=False), conv_dropout=0.0),
        ModelSpec(name="leenet11", reference_name="LeeNet11", family="leenet",
                  backbone=LeeNetSpec(1, ((64, 3, 1), (64, 1, 3), (64, 1, 3), (128, 1, 3),
                                          (128, 1, 3), (128, 1, 3), (128, 1, 3), (128, 1, 3),
                                          (256, 1, 3))),
                  head=HeadSpec(embedding_size=512), conv_dropout=0.0, **_WAVE),
        ModelSpec(name="leenet24", reference_name="LeeNet24", family="leenet",
                  backbone=LeeNetSpec(2, ((64, 3, 1), (96, 1, 3), (128, 1, 3), (128, 1, 3),
                                          (256, 1, 3), (256, 1, 3), (512, 1, 3), (512, 1, 3),
                                          (1024, 1, 1)), dropout=0.1, dropout_blocks=8),
                  head=HeadSpec(embedding_size=1024), conv_dropout=0.0, **_WAVE),
        ModelSpec(name="dainet19", reference_name="DaiNet19", family="dainet",
                  backbone=DaiNetSpec(), head=HeadSpec(embedding_size=512), conv_dropout=0.0,
                  unused=("conv_block1.downsample", "conv_block1.bn_downsample"), **_WAVE),
        ModelSpec(name="res1dnet31", reference_name="Res1dNet31", family="res1dnet",
                  backbone=Res1dNetSpec(), conv_dropout=0.0, **_WAVE),
        ModelSpec(name="res1dnet51", reference_name="Res1dNet51", family="res1dnet",
                  backbone=Res1dNetSpec(layers=(2, 3, 4, 6, 4, 3, 2)), conv_dropout=0.0,
                  **_WAVE),
        ModelSpec(name="wavegram_cnn14", reference_name="Wavegram_Cnn14", family="convnet",
                  backbone=_WAVEGRAM_TRUNK, frontend=None, wavegram=WavegramSpec(),
                  spec_augment=None, mixup_domain="wavegram",
                  unused=("bn0", "conv_block1", "spec_augmenter")),
        ModelSpec(name="wavegram_logmel_cnn14", reference_name="Wavegram_Logmel_Cnn14",
                  family="convnet", backbone=_WAVEGRAM_TRUNK, wavegram=WavegramSpec(),
                  mixup_domain="wavegram_logmel"),
        ModelSpec(name="wavegram_logmel128_cnn14", reference_name="Wavegram_Logmel128_Cnn14",
                  family="convnet", backbone=_WAVEGRAM_TRUNK,
                  wavegram=WavegramSpec(widths=(64, 64, 128, 256)),
                  frontend=LogMelSpec(mel_bins=128),
                  spec_augment=SpecAugmentSpec(freq_drop_width=16),
                  mixup_domain="wavegram_logmel"),
    ]  # fmt: skip
    return {spec.name: spec for spec in s + _efficientat_specs()}


# EfficientAT (Schmid et al., github.com/fschmid56/EfficientAT): every architecture of a
# released AudioSet checkpoint. The digits are the width: mn04 = width_mult 0.4.
MN_WIDTHS = {
    "mn01": 0.1,
    "mn02": 0.2,
    "mn04": 0.4,
    "mn05": 0.5,
    "mn10": 1.0,
    "mn20": 2.0,
    "mn30": 3.0,
    "mn40": 4.0,
}
DYMN_WIDTHS = {"dymn04": 0.4, "dymn10": 1.0, "dymn20": 2.0}
EAT_HOPS_MS = (5, 15, 20, 25)  # mn10_hop_N: hop N ms (N * 32 samples at 32 kHz)
EAT_MELS = (40, 64, 256)  # mn10_mels_N: N mel bands


def efficientat_spec(
    name: str, family: str, backbone, frontend: EATLogMelSpec | None = None
) -> ModelSpec:
    """An EfficientAT model: its front end (default: 128 mel bands, hop 10 ms), no bn0 or
    SpecAugment, log-mel mixup (the reference's AudioSet recipe mixes log-mels)."""
    frontend = frontend or EATLogMelSpec()
    embedding = 6 * make_divisible(160 * backbone.width_mult, 8)  # pooled features.16 width
    return ModelSpec(
        name=name,
        reference_name=name,
        family=family,
        backbone=backbone,
        head=HeadSpec(embedding_size=embedding, pre_dropout=False),
        frontend=frontend,
        sample_rate=frontend.sample_rate,
        spec_augment=None,
        conv_dropout=0.0,
        mixup_domain="logmel",
        reference="efficientat",
    )


def _efficientat_specs() -> list[ModelSpec]:
    fc = dict(head_type="fully_convolutional")
    return [
        *(efficientat_spec(name, "mn", MNSpec(width_mult=w)) for name, w in MN_WIDTHS.items()),
        efficientat_spec("mn10_fc", "mn", MNSpec(**fc)),
        efficientat_spec("mn10_fc_s2221", "mn", MNSpec(strides=(2, 2, 2, 1), **fc)),
        efficientat_spec("mn10_fc_s2211", "mn", MNSpec(strides=(2, 2, 1, 1), **fc)),
        *(
            efficientat_spec(f"mn10_hop_{ms}", "mn", MNSpec(), EATLogMelSpec(hop_size=32 * ms))
            for ms in EAT_HOPS_MS
        ),
        *(
            efficientat_spec(f"mn10_mels_{n}", "mn", MNSpec(), EATLogMelSpec(mel_bins=n))
            for n in EAT_MELS
        ),
        # dymn: temperature 30 (get_model's T_max, a fresh model); the converter sets 1 for
        # released AudioSet checkpoints, as the reference does when it loads one.
        *(
            efficientat_spec(name, "dymn", DyMNSpec(width_mult=w))
            for name, w in DYMN_WIDTHS.items()
        ),
    ]


MODEL_SPECS: dict[str, ModelSpec] = _specs()

# The 15 systems of the paper's Table XII (parameter counts there).
PAPER_SYSTEMS = (
    "cnn6", "cnn10", "cnn14", "resnet22", "resnet38", "resnet54", "mobilenet_v1",
    "mobilenet_v2", "dainet19", "leenet11", "leenet24", "res1dnet31", "res1dnet51",
    "wavegram_cnn14", "wavegram_logmel_cnn14",
)  # fmt: skip

# The PANNs paper's multiply-adds per 10 s clip at 32 kHz, x 2 (FLOPs): Cnn14 is 21.1 G
# multiply-adds (20.0 G in its convolutions, 1.05 G in the STFT), so 42.22e9. The
# benchmarks divide measured speed by these.
PAPER_FLOPS = {
    "cnn14": 42.22e9, "cnn6": 21.986e9, "cnn10": 28.166e9, "mobilenet_v1": 3.614e9,
    "wavegram_logmel_cnn14": 53.51e9, "resnet38": 48.962e9,
}  # fmt: skip


class UnknownModelError(UserError, ValueError, KeyError):
    """An architecture name the registry does not have: a ``ValueError`` (and, for callers
    written against 0.1, a ``KeyError``) whose message names the close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def canonical_name(name: str) -> str:
    """Map ``Cnn14_DecisionLevelAtt``, ``cnn14-16k`` or ``cnn14`` to the registry name.

    Raises:
        UnknownModelError: (a ValueError) naming the close matches and the valid names.
    """
    if name in MODEL_SPECS:
        return name
    by_ref = {s.reference_name.lower(): s.name for s in MODEL_SPECS.values()}
    key = name.strip().lower().replace("-", "_")
    if key in MODEL_SPECS:
        return key
    if key in by_ref:
        return by_ref[key]
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip()).lower().replace("-", "_")
    if snake in MODEL_SPECS:
        return snake
    squashed = {n.replace("_", ""): n for n in MODEL_SPECS}  # best match first
    close = [squashed[c] for c in difflib.get_close_matches(key.replace("_", ""), squashed)]
    said = " or ".join([", ".join(close[:-1]), close[-1]] if len(close) > 1 else close)
    hint = f"did you mean {said}? " if close else ""
    raise UnknownModelError(f"{name}: unknown model; {hint}(valid names: "
                            f"{', '.join(sorted(MODEL_SPECS))})")  # fmt: skip


def get_spec(name: str) -> ModelSpec:
    return MODEL_SPECS[canonical_name(name)]


def list_models() -> list[str]:
    return sorted(MODEL_SPECS)


def infer_model_name(filename: str) -> str:
    """Model name from a released checkpoint name such as ``Cnn14_16k_mAP=0.438.pth``.

    Raises:
        KeyError: when no registered reference name matches.
    """
    stem = re.sub(r"\.(pth|pt|ckpt|tar)$", "", filename.rsplit("/", 1)[-1], flags=re.I)
    eat = _efficientat_name(stem)
    if eat is not None:
        return eat
    stem = re.split(r"_mAP=", stem, flags=re.I)[0]
    refs = sorted((s for s in MODEL_SPECS.values() if s.reference == "panns"),
                  key=lambda s: -len(s.reference_name))  # fmt: skip
    for spec in refs:  # the longest reference name that prefixes the stem
        if stem.lower() == spec.reference_name.lower():
            return spec.name
    for spec in refs:
        if stem.lower().startswith(spec.reference_name.lower() + "_"):
            return spec.name
    raise KeyError(
        f"cannot infer the model from file name {filename!r}; pass --arch "
        f"(one of: {', '.join(sorted(MODEL_SPECS))})"
    )


_EAT_FILE = re.compile(r"(dymn|mn)(\d\d)(?:_(?:as|im))?((?:_[a-z0-9]+)*)", re.I)
# Words of EfficientAT release names that do not change the architecture: training data
# (ext: AudioSet + extra data; no_im_pre: no ImageNet pretraining), golden / pytorch tags.
_EAT_NEUTRAL = ("ext", "no", "im", "pre", "golden", "pytorch")


def _efficientat_name(stem: str) -> str | None:
    """Registry name of an EfficientAT release name (``mn10_as_mAP_471``,
    ``mn40_as_ext_mAP_487``, ``mn10_as_fc_s2221_mAP_466``, ``mn10_as_hop_15_mAP_463``,
    ``mn10_as_mels_64_mAP_461``, ``dymn10_as``), None when ``stem`` is not one.

    Raises:
        KeyError: an EfficientAT name whose architecture the registry does not have.
    """
    stem = re.sub(r"\(\d+\)$", "", stem)  # "mn40_as_mAP_483(2)"
    stem = re.sub(r"_mAP_\d+$", "", stem, flags=re.I)
    match = _EAT_FILE.fullmatch(stem)
    if match is None:
        return None
    family, digits, rest = match.group(1).lower(), match.group(2), match.group(3).lower()
    words, parts, i = rest.split("_")[1:], [], 0
    while i < len(words):
        word = words[i]
        if word in ("hop", "mels") and i + 1 < len(words) and words[i + 1].isdigit():
            parts.append(f"{word}_{words[i + 1]}")
            i += 2
            continue
        if word == "fc" or re.fullmatch(r"s[12]{4}", word):
            parts.append(word)
        elif word not in _EAT_NEUTRAL:
            raise KeyError(f"{stem}: EfficientAT name with an unknown part {word!r}; pass --arch")
        i += 1
    name = "_".join([family + digits, *parts])
    if name not in MODEL_SPECS:
        known = sorted(n for n, s in MODEL_SPECS.items() if s.reference == "efficientat")
        raise KeyError(f"{stem}: no EfficientAT architecture {name} (known: {', '.join(known)})")
    return name


def checkpoint_overrides(filename: str, name: str) -> dict:
    """Spec overrides that a checkpoint's file name implies beyond its architecture ``name``.

    A released EfficientAT dymn AudioSet checkpoint (``dymn10_as.pt``,
    ``dymn20_as_mAP_493.pt``) runs its dynamic convolutions at temperature 1: the reference's
    ``get_model`` sets ``pretrain_final_temp`` (1) whenever it loads one. Any other file keeps
    the registry's spec (a freshly built dymn: temperature 30).
    """
    spec = get_spec(name)
    stem = filename.rsplit("/", 1)[-1].lower()
    if spec.family == "dymn" and re.search(r"(^|_)as(_|\.|\(|$)", stem):
        return {"backbone": replace(spec.backbone, temperature=1.0)}
    return {}
