"""Architecture as data: frozen dataclasses describing every PANNs system.

No Keras import here. A :class:`ModelSpec` fully determines a model: the registry
(:mod:`panns_keras.models.registry`) holds one spec per reference class, and
:func:`panns_keras.build_model` turns a spec into a Keras model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LogMelSpec:
    """Log-mel front end (torchlibrosa ``Spectrogram`` + ``LogmelFilterBank``)."""

    sample_rate: int = 32000
    window_size: int = 1024
    hop_size: int = 320
    mel_bins: int = 64
    fmin: float = 50.0
    fmax: float = 14000.0


@dataclass(frozen=True)
class SpecAugmentSpec:
    """torchlibrosa ``SpecAugmentation`` stripe widths and counts."""

    time_drop_width: int = 64
    time_stripes_num: int = 2
    freq_drop_width: int = 8
    freq_stripes_num: int = 2


@dataclass(frozen=True)
class ConvNetSpec:
    """CNN6/10/14 trunk: one ConvBlock per width.

    ``kernel`` 3 gives the two-conv ``ConvBlock``; 5 gives ``ConvBlock5x5`` (one conv).
    ``pools`` is the (time, freq) average-pool size after each block.
    ``first_block`` > 1 skips the leading blocks (Wavegram models start at conv_block2).
    """

    widths: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)
    pools: tuple[tuple[int, int], ...] = ((2, 2),) * 5 + ((1, 1),)
    kernel: int = 3
    first_block: int = 1


@dataclass(frozen=True)
class ResNetSpec:
    """ResNet22/38/54: conv_block1, ``_ResNet(block, layers)``, avgpool, conv_block_after1."""

    block: str = "basic"  # 'basic' | 'bottleneck'
    layers: tuple[int, ...] = (2, 2, 2, 2)
    planes: tuple[int, ...] = (64, 128, 256, 512)
    strides: tuple[int, ...] = (1, 2, 2, 2)
    after_width: int = 2048


@dataclass(frozen=True)
class MobileNetV1Spec:
    """MobileNetV1 ``features``: stem width, then (out, pool stride) per ``conv_dw`` stage."""

    stem: int = 32
    stages: tuple[tuple[int, int], ...] = (
        (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
        (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
    )  # fmt: skip


@dataclass(frozen=True)
class MobileNetV2Spec:
    """MobileNetV2: stem width, (t, c, n, s) inverted-residual table, last 1x1 width."""

    stem: int = 32
    stages: tuple[tuple[int, int, int, int], ...] = (
        (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
        (6, 96, 3, 2), (6, 160, 3, 1), (6, 320, 1, 1),
    )  # fmt: skip
    last: int = 1280


@dataclass(frozen=True)
class LeeNetSpec:
    """LeeNet11 (one conv per block) / LeeNet24 (two convs per block).

    ``blocks`` rows are (out_channels, first-conv stride, max-pool size; 1 = none).
    """

    convs_per_block: int = 1
    blocks: tuple[tuple[int, int, int], ...] = ()
    dropout: float = 0.0  # after every pooled block (LeeNet24: blocks 1-8)
    dropout_blocks: int = 0


@dataclass(frozen=True)
class DaiNetSpec:
    """DaiNet19: conv0 (k80, s4) + bn0, then residual blocks separated by max-pool 4."""

    conv0_kernel: int = 80
    conv0_stride: int = 4
    widths: tuple[int, ...] = (64, 128, 256, 512)
    pool: int = 4


@dataclass(frozen=True)
class Res1dNetSpec:
    """Res1dNet31/51: conv0 (k11, s5, p5) + bn0, then ``_ResNetWav1d`` layers."""

    layers: tuple[int, ...] = (2, 2, 2, 2, 2, 2, 2)
    planes: tuple[int, ...] = (64, 128, 256, 512, 1024, 1024, 2048)
    strides: tuple[int, ...] = (1, 4, 4, 4, 4, 4, 4)


@dataclass(frozen=True)
class WavegramSpec:
    """Wavegram branch: pre_conv0, three ConvPreWavBlocks, reshape, pre_block4."""

    widths: tuple[int, ...] = (64, 64, 128, 128)  # pre_conv0, pre_block1..3
    groups: int = 4  # channel groups of the reshape; freq bins = widths[-1] // groups
    block4_width: int = 64


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to a multiple of ``divisor`` (at least ``divisor``), never more than
    10% below ``value``: the MobileNet channel rule (EfficientAT ``make_divisible``)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclass(frozen=True)
class EATLogMelSpec:
    """EfficientAT's front end (``models/preprocess.AugmentMelSTFT``).

    Pre-emphasis ``[-0.97, 1]`` (one sample shorter), centred STFT (reflect padding of
    ``n_fft // 2``) with a symmetric Hann window of ``window_size`` samples centred in the
    ``n_fft`` frame, power, Kaldi mel banks (``fmin`` .. ``fmax``, plus a zero column for the
    Nyquist bin), ``log(x + 1e-5)`` and ``(x + 4.5) / 5``. ``freq_mask`` / ``time_mask`` are
    the widest training masks (torchaudio ``FrequencyMasking`` / ``TimeMasking``, one per
    example); 0 turns one off, as the reference's AudioSet recipe does (``ex_audioset.py``:
    ``--freqm 0 --timem 0``; ``AugmentMelSTFT``'s own defaults are 48 and 192). Field names
    shared with :class:`LogMelSpec` mean the same.
    """

    sample_rate: int = 32000
    window_size: int = 800
    hop_size: int = 320
    mel_bins: int = 128
    fmin: float = 0.0
    fmax: float = 15000.0
    n_fft: int = 1024
    freq_mask: int = 0
    time_mask: int = 0


@dataclass(frozen=True)
class MNSpec:
    """EfficientAT ``mn``: MobileNetV3 (``models/mn/model.py``, ``get_model``).

    The inverted-residual table is MobileNetV3-Large's, every width scaled by ``width_mult``
    (rounded to a multiple of 8); ``strides`` are those of the four stride-2 blocks
    (``(2, 2, 2, 1)`` keeps more time frames). ``head_type``: 'mlp' (mean over frequency
    and time, Linear, hard-swish, dropout, Linear) or 'fully_convolutional' (1x1 conv, BN,
    mean); the reference's third, ``multihead_attention_pooling``, is not ported (no released
    checkpoint uses it). Squeeze-excitation on channels (``se_dims='c'``) or none
    (``'none'``); the reference's frequency / time variants fix the input size and are not
    ported either.
    """

    width_mult: float = 1.0
    strides: tuple[int, ...] = (2, 2, 2, 2)
    head_type: str = "mlp"
    reduced_tail: bool = False
    dilated: bool = False
    se_dims: str = "c"
    se_r: int = 4
    dropout: float = 0.2


@dataclass(frozen=True)
class HeadSpec:
    """Pooling and classifier head.

    kind: 'clip' (global pool + fc1 + fc_audioset), or decision-level
    'decision_max' / 'decision_avg' / 'decision_att'.
    hidden: widths of extra Dense + ReLU layers between the embedding and the classifier
    (``mlp_1``, ``mlp_2``, ...; clip heads only): the transfer mode ``freeze_l3`` uses two.
    Empty in every reference system.
    """

    kind: str = "clip"
    embedding_size: int = 2048
    pre_dropout: bool = True  # dropout(0.5) before fc1 (MobileNetV2 has none)
    hidden: tuple[int, ...] = ()


BackboneSpec = (
    ConvNetSpec | ResNetSpec | MobileNetV1Spec | MobileNetV2Spec | LeeNetSpec | DaiNetSpec
    | Res1dNetSpec | MNSpec
)  # fmt: skip


@dataclass(frozen=True)
class ModelSpec:
    """A complete PANNs system.

    Args:
        name: registry name (snake case).
        reference_name: the reference class name (``Cnn14_DecisionLevelAtt``).
        family: 'convnet' | 'resnet' | 'mobilenet_v1' | 'mobilenet_v2' | 'leenet' |
            'dainet' | 'res1dnet'.
        backbone: the family's stage table.
        frontend: log-mel settings, or None for waveform models.
        wavegram: Wavegram branch, or None.
        sample_rate: input sample rate (equals frontend.sample_rate when there is one).
        spec_augment: SpecAugment settings, or None when the model has none.
        conv_dropout: dropout after conv blocks (0.2 in the CNNs, 0 in Cnn14_no_dropout).
        mixup_domain: where the reference mixes: 'logmel', 'waveform', 'wavegram',
            'wavegram_logmel'.
        unused: reference modules that exist (and are checkpointed) but are never called.
        clip_seconds: length of the clips the model was trained on (PANNs checkpoints: 10 s;
            set by the converter, the trainer and finetune), or None when unknown. Inference
            and export default their window to it and zero-pad shorter input to it.
        reference: which reference the model follows: 'panns' (Kong et al.: Slaney log-mel,
            bn0, SpecAugment) or 'efficientat' (Schmid et al.: :class:`EATLogMelSpec` front
            end, no bn0 and no SpecAugment; families 'mn' and 'dymn').
    """

    name: str
    reference_name: str
    family: str
    backbone: Any
    head: HeadSpec = field(default_factory=HeadSpec)
    frontend: LogMelSpec | None = field(default_factory=LogMelSpec)
    wavegram: WavegramSpec | None = None
    sample_rate: int = 32000
    spec_augment: SpecAugmentSpec | None = field(default_factory=SpecAugmentSpec)
    conv_dropout: float = 0.2
    mixup_domain: str = "logmel"
    num_classes: int = 527
    unused: tuple[str, ...] = ()
    clip_seconds: float | None = None
    reference: str = "panns"

    @property
    def clip_samples(self) -> int | None:
        """``clip_seconds`` in samples (at least ``min_samples``), or None when unknown."""
        if not self.clip_seconds:
            return None
        return max(round(float(self.clip_seconds) * self.sample_rate), self.min_samples)

    @property
    def min_samples(self) -> int:
        """Shortest input the model accepts (reflect padding needs > n_fft / 2 samples)."""
        fe = self.frontend
        if isinstance(fe, EATLogMelSpec):  # pre-emphasis takes one sample, then n_fft / 2 + 1
            return max(fe.n_fft // 2 + 2, fe.hop_size * 32)
        if fe is not None:
            return max(fe.window_size // 2 + 1, fe.hop_size * 32)
        return self.sample_rate  # 1 s for waveform models: enough for every stride

    def to_dict(self) -> dict[str, Any]:
        return _to_jsonable(dataclasses.asdict(self))


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    return value


# Flat override names accepted by build_model(name, **overrides) and where they live.
_LOGMEL_FIELDS = tuple(f.name for f in dataclasses.fields(LogMelSpec))
FRONTEND_FIELDS = _LOGMEL_FIELDS + tuple(
    f.name for f in dataclasses.fields(EATLogMelSpec) if f.name not in _LOGMEL_FIELDS
)
HEAD_FIELDS = ("embedding_size", "hidden")


def apply_overrides(spec: ModelSpec, **overrides: Any) -> ModelSpec:
    """Return ``spec`` with flat overrides applied (``sample_rate=16000``, ``mel_bins=128``,
    ``embedding_size=512``, ``spec_augment=False``, ``conv_dropout=0.0``, ``num_classes=10``).
    """
    frontend_kw = {k: overrides.pop(k) for k in list(overrides) if k in FRONTEND_FIELDS}
    head_kw = {k: overrides.pop(k) for k in list(overrides) if k in HEAD_FIELDS}
    if "spec_augment" in overrides:
        flag = overrides.pop("spec_augment")
        if isinstance(flag, dict):
            flag = SpecAugmentSpec(**flag)
        elif flag is True:
            flag = spec.spec_augment or SpecAugmentSpec()
        elif flag is False:
            flag = None
        overrides["spec_augment"] = flag
    top_fields = {f.name for f in dataclasses.fields(ModelSpec)} - {"name", "reference_name"}
    unknown = sorted(set(overrides) - top_fields)
    if unknown:
        valid = sorted(top_fields | set(FRONTEND_FIELDS) | set(HEAD_FIELDS))
        raise ValueError(f"unknown model override(s) {unknown}; valid: {', '.join(valid)}")
    if frontend_kw:
        if spec.frontend is None:
            if set(frontend_kw) - {"sample_rate"}:
                raise ValueError(f"{spec.name} has no log-mel front end to override")
            overrides["sample_rate"] = frontend_kw["sample_rate"]
        else:
            own = {f.name for f in dataclasses.fields(spec.frontend)}
            if set(frontend_kw) - own:
                raise ValueError(f"{spec.name}'s front end has no {sorted(set(frontend_kw) - own)}")
            overrides["frontend"] = dataclasses.replace(spec.frontend, **frontend_kw)
            overrides["sample_rate"] = overrides["frontend"].sample_rate
    if head_kw:
        if "hidden" in head_kw:
            head_kw["hidden"] = tuple(int(w) for w in head_kw["hidden"] or ())
        overrides["head"] = dataclasses.replace(spec.head, **head_kw)
    return dataclasses.replace(spec, **overrides)


@dataclass(frozen=True)
class DyMNSpec:
    """EfficientAT ``dymn``: dynamic MobileNet (``models/dymn/model.py``, ``get_model``).

    MobileNetV3-Large's inverted-residual table, every block a dynamic block: context from
    the block input (channel-frequency and channel-time means, a shared 1x1 conv), dynamic
    convolutions (softmax over ``dyconv_k`` kernels at ``temperature``), dynamic ReLU
    (``dyrelu_k`` linear pieces) and coordinate attention. Widths scale by ``width_mult``
    (rounded to a multiple of 8); ``strides`` are those of the four stride-2 blocks. The
    context size is ``expanded // context_ratio`` clipped to ``[min_context_size,
    max_context_size] * width_mult``. ``temperature``: ``get_model``'s ``T_max`` (30) for a
    freshly built model, ``pretrain_final_temp`` (1) when loading a released checkpoint (the
    reference sets it so whenever ``pretrained_name`` is given). ``head_type``: 'mlp' or
    'fully_convolutional'.
    """

    width_mult: float = 1.0
    strides: tuple[int, ...] = (2, 2, 2, 2)
    head_type: str = "mlp"
    context_ratio: int = 4
    max_context_size: int = 128
    min_context_size: int = 32
    dyrelu_k: int = 2
    dyconv_k: int = 4
    temperature: float = 30.0
    dropout: float = 0.2
