"""Warm start for the one trainer: a new model for a new label set from an initial model.

Transfer modes (the PANNs paper's, Kong et al. 2020, section VI):

* ``scratch``:   the initial model's architecture, randomly initialised, every weight trained.
* ``finetune``:  the initial model's weights, a new classifier, every weight trained (the
  base at ``learning_rate * base_lr_scale``).
* ``freeze_l1``: the initial model's weights frozen, a new linear classifier on the embedding.
* ``freeze_l3``: the initial model's weights frozen, a new 3-layer MLP on the embedding
  (``mlp_1``, ``mlp_2``, then the classifier: ``HeadSpec.hidden``).

Frozen layers are made non-trainable and the trainer runs the model in inference mode in
the frozen modes, so their BatchNorm statistics do not move and dropout / SpecAugment are off.
Every result is a plain :class:`AudioTagger` (model directory, ``.keras``, export and tag
work unchanged).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from panns_keras.errors import UserError

MODES = ("scratch", "finetune", "freeze_l1", "freeze_l3")
# Layers a new label set replaces (layer names); `mlp_*` are new in freeze_l3.
CLASSIFIER = (
    "fc_audioset",
    "att_block_att",
    "att_block_cla",
    "att_block_bn_att",
    # EfficientAT: the mlp head's last Linear, the fully-convolutional head's conv and BN
    # (what the reference itself drops for a new label set)
    "classifier_5",
    "classifier_0",
    "classifier_1",
)


def load_init(path: str | Path):
    """The initial model: a model directory, a ``.keras`` file, a PANNs ``.pth`` file or a
    preset name (``cnn14``)."""
    from panns_keras.models.build import load_model, resolve

    path = Path(resolve(path))
    if path.suffix == ".pth":
        from panns_keras.convert.converter import load_checkpoint_into_model

        return load_checkpoint_into_model(path)

    return load_model(path)


def is_head(name: str) -> bool:
    """Whether layer ``name`` belongs to the new head (trained in every mode)."""
    return name in CLASSIFIER or name.startswith("mlp_")


def transfer_model(
    init,
    num_classes: int,
    mode: str,
    *,
    hidden: int = 512,
    seed: int | None = None,
    labels=None,
    spec_changes: dict | None = None,
):
    """A ``num_classes`` AudioTagger for ``mode`` from ``init`` (never modified).

    ``spec_changes`` may set ``spec_augment`` (a SpecAugmentSpec or None) and
    ``conv_dropout``: settings that change no weight.
    """
    from panns_keras.models.tagger import AudioTagger

    if mode not in MODES:
        raise UserError(f"model.mode={mode!r}; allowed: {', '.join(MODES)}")
    spec = init.spec
    if mode.startswith("freeze") and spec.head.kind != "clip":
        raise UserError(f"{spec.name}: mode {mode} needs a clip-level model with an embedding")
    head = dataclasses.replace(spec.head, hidden=(hidden, hidden) if mode == "freeze_l3" else ())
    spec = dataclasses.replace(
        spec, num_classes=int(num_classes), head=head, **(spec_changes or {})
    )
    model = AudioTagger(spec, seed=seed, labels=labels)
    if mode != "scratch":
        theirs = init.weight_layers()
        for name, layer in model.weight_layers().items():
            if is_head(name):
                continue
            layer.set_weights(theirs[name].get_weights())
    if mode.startswith("freeze"):
        for name, layer in model.weight_layers().items():
            if not is_head(name):
                layer.trainable = False
    return model


def split_variables(model) -> tuple[list, list]:
    """(base, head) trainable variables of a transfer model."""
    base, head = [], []
    for name, layer in model.weight_layers().items():
        (head if is_head(name) else base).extend(layer.trainable_variables)
    return base, head


def clip_seconds_of(config) -> float | None:
    """The training clip length in seconds (``data.clip_samples / data.sample_rate``), which
    the trained model records as ``spec.clip_seconds``; None when the config has none."""
    samples, rate = config.data.get("clip_samples"), config.data.get("sample_rate")
    if not samples or not rate:
        return None
    return round(int(samples) / int(rate), 6)


def build_model_from_config(config, init=None):
    """The model to train: ``config.model.name`` built anew, or (``config.model.init``) a
    transfer model from the initial model ``init`` (loaded from the config when None)."""
    import keras

    from panns_keras.train import config as config_lib

    if config.model.init:
        from panns_keras.models.spec import SpecAugmentSpec

        init = init if init is not None else load_init(config.model.init)
        o, changes = config.model.overrides, {}
        if o.spec_augment is not None:
            changes["spec_augment"] = (
                (init.spec.spec_augment or SpecAugmentSpec()) if o.spec_augment else None
            )
        if o.conv_dropout is not None:
            changes["conv_dropout"] = float(o.conv_dropout)
        changes["clip_seconds"] = clip_seconds_of(config)
        model = transfer_model(
            init,
            int(config.data.num_classes),
            config.model.mode,
            hidden=int(config.model.mlp_hidden),
            seed=int(config.seed),
            spec_changes=changes,
        )
        fresh = [
            layer
            for name, layer in model.weight_layers().items()
            if is_head(name) or config.model.mode == "scratch"
        ]
        seeded_glorot(fresh, int(config.seed))
    else:
        from panns_keras.models.build import build_model

        try:
            model = build_model(
                config.model.name,
                num_classes=int(config.data.num_classes),
                seed=int(config.seed),
                clip_seconds=clip_seconds_of(config),
                **config_lib.overrides_dict(config),
            )
        except (KeyError, ValueError) as e:
            raise UserError(f"config.model.name: {e}") from None
        seeded_glorot(model.weight_layers().values(), int(config.seed))
    if config.model.disable_dropout:
        for layer in model.sublayers():
            if isinstance(layer, keras.layers.Dropout):
                layer.rate = 0.0
    if config.train.sync_batchnorm:
        for layer in model.sublayers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True
    return model


def seeded_glorot(layers, seed: int) -> None:
    """Redraws the Glorot-uniform kernels of ``layers`` (the reference's ``init_layer``) from
    NumPy's generator seeded with ``(seed, layer index)``: the same initial weights on every
    Keras backend for the same config and seed (each backend's own RNG draws other numbers).
    Biases, BatchNorm and other initialisers are constants and already agree."""
    import keras
    import numpy as np

    from panns_keras.models.initializers import glorot_limit

    for i, layer in enumerate(layers):
        for attr in ("kernel", "depthwise_kernel"):
            init = getattr(
                layer, f"{attr}_initializer" if attr == "kernel" else "depthwise_initializer", None
            )
            var = getattr(layer, attr, None)
            if var is None or not isinstance(init, keras.initializers.GlorotUniform):
                continue
            shape = tuple(var.shape)
            limit = glorot_limit(shape)
            rng = np.random.default_rng([int(seed), i, len(attr)])
            var.assign(_uniform(rng, -limit, limit, shape, var.dtype))


def _uniform(rng, low: float, high: float, shape, dtype, chunk: int = 1 << 20):
    """``rng.uniform(low, high, shape).astype(dtype)``, the same values, drawn ``chunk`` at a
    time into the output: no float64 array of the whole kernel is made (or paged in)."""
    import numpy as np

    out = np.empty(shape, dtype=dtype)
    flat = out.reshape(-1)
    for start in range(0, flat.size, chunk):
        stop = min(start + chunk, flat.size)
        flat[start:stop] = rng.uniform(low, high, size=stop - start)
    return out
