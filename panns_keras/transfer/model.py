"""Transfer models for the PANNs paper's modes (Kong et al. 2020, section "transfer").

* ``scratch``:   the model architecture, randomly initialised, all weights trained.
* ``finetune``:  pretrained base, new classifier, all weights trained.
* ``freeze_l1``: pretrained base frozen (run with ``training=False``), new linear classifier
  on the embedding. This *is* an :class:`AudioTagger` with ``num_classes=K`` whose only
  trained layer is ``fc_audioset`` (it reads fc1's ReLU output = the embedding).
* ``freeze_l3``: frozen base + a three-layer MLP on the embedding (:class:`TransferMLP`).

``scratch``/``finetune``/``freeze_l1`` (and the probe) give plain AudioTaggers, so the model
directory, ``load_model``, tag and export work unchanged. ``freeze_l3`` is a wrapper model
saved as a ``.keras`` file (load_model reads it after ``import panns_keras.transfer``).
"""

from __future__ import annotations

import dataclasses

import keras
from keras import ops

from panns_keras.errors import UserError

MODES = ("scratch", "finetune", "freeze_l1", "freeze_l3")
HEAD_PATHS = ("fc_audioset", "att_block_att", "att_block_cla", "att_block_bn_att")  # layer names


def resolve_base(init=None, model_name: str | None = None, **overrides):
    """AudioTagger from a model object, a model directory, a ``.pth`` file, or (init None)
    a randomly initialised ``model_name`` with ``overrides``."""
    from panns_keras.models.tagger import AudioTagger

    if isinstance(init, AudioTagger):
        return init
    if init is None:
        if not model_name:
            raise UserError("--model: required (a model directory or .pth), or --arch NAME for a "
                            "randomly initialised base")  # fmt: skip
        import panns_keras

        return panns_keras.build_model(model_name, **overrides)
    init = str(init)
    if init.endswith(".pth"):
        from panns_keras.convert.converter import load_checkpoint_into_model

        return load_checkpoint_into_model(init, model_name)
    import panns_keras

    return panns_keras.load_model(init)


def copy_base_weights(src, dst) -> int:
    """Copies every weight layer but the classifier from ``src`` to ``dst``; returns count."""
    n = 0
    theirs = dst.weight_layers()
    for path, layer in src.weight_layers().items():
        if path in HEAD_PATHS:
            continue
        other = theirs.get(path)
        if other is None:
            raise UserError(f"{path}: layer missing in the target model")
        other.set_weights(layer.get_weights())
        n += 1
    return n


def _tagger(spec, num_classes, seed, spec_augment):
    from panns_keras.models.tagger import AudioTagger

    changes = {"num_classes": num_classes}
    if not spec_augment:
        changes["spec_augment"] = None
    return AudioTagger(dataclasses.replace(spec, **changes), seed=seed)


@keras.saving.register_keras_serializable(package="panns_keras.transfer")
class TransferMLP(keras.Model):
    """Frozen AudioTagger base + MLP head (Freeze_L3): embedding -> [Dense+ReLU] x 2 -> K.

    Call: ``model(waveform, training=False, base_training=False)`` -> dict ``logits``,
    ``clipwise_output`` (softmax, or sigmoid when ``multi_label``) and ``embedding``.
    """

    def __init__(self, base_spec, num_classes: int, hidden: int = 512, multi_label=False,
                 labels=None, seed=None, **kwargs):  # fmt: skip
        from panns_keras.models.tagger import AudioTagger

        super().__init__(**kwargs)
        self.base = AudioTagger(base_spec, seed=seed, name="base")
        self.base_spec = self.base.spec
        self.num_classes, self.hidden, self.multi_label = num_classes, hidden, multi_label
        self.labels = tuple(labels) if labels else None
        self.mlp = [keras.layers.Dense(hidden, activation="relu", name="mlp_1"),
                    keras.layers.Dense(hidden, activation="relu", name="mlp_2"),
                    keras.layers.Dense(num_classes, name="mlp_out")]  # fmt: skip

    def build(self, input_shape=None):
        if self.built:
            return
        width = self.base.spec.head.embedding_size
        for layer in self.mlp:
            layer.build((None, width))
            width = layer.units
        self.built = True

    def head(self, embedding):
        x = embedding
        for layer in self.mlp:
            x = layer(x)
        return x

    def call(self, waveform, training=None, base_training=False):
        emb = self.base(waveform, training=base_training)["embedding"]
        logits = self.head(emb)
        act = ops.sigmoid if self.multi_label else (lambda z: ops.softmax(z, axis=-1))
        return {"logits": logits, "clipwise_output": act(logits), "embedding": emb}

    def get_config(self):
        return {
            "base_spec": self.base_spec.to_dict(),
            "num_classes": self.num_classes,
            "hidden": self.hidden,
            "multi_label": self.multi_label,
            "labels": list(self.labels) if self.labels else None,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        from panns_keras.models.tagger import spec_from_dict

        config = dict(config)
        config["base_spec"] = spec_from_dict(config["base_spec"])
        return cls(**config)


@dataclasses.dataclass
class TransferModel:
    """A model plus the split of its variables into base and head."""

    model: keras.Model
    mode: str
    base_vars: list
    head_vars: list

    @property
    def frozen(self) -> bool:
        return self.mode.startswith("freeze")

    def logits(self, waveform, train_base: bool, training_head: bool = True):
        """(B, K) logits; the base runs with ``training=train_base`` (BN, SpecAugment)."""
        if isinstance(self.model, TransferMLP):
            return self.model(waveform, training=training_head, base_training=train_base)["logits"]
        return self.model(waveform, training=train_base, return_intermediates=True)["logits"]


def build_transfer_model(base, num_classes: int, mode: str, *, hidden: int = 512,
                         multi_label: bool = False, seed: int | None = None,
                         spec_augment: bool = True) -> TransferModel:  # fmt: skip
    """New K-class model for ``mode`` from ``base`` (an AudioTagger; its weights are copied
    for every mode but ``scratch``; ``base`` itself is never modified)."""
    if mode not in MODES:
        raise UserError(f"--mode {mode}: unknown mode; one of {', '.join(MODES)}")
    if base.spec.head.kind != "clip":
        raise UserError(f"{base.spec.name}: transfer needs a clip-level model (no decision-level)")
    if seed is not None:
        # AudioTagger's seed covers dropout / SpecAugment only; weight initialisers draw from
        # Keras' global generator, whose state depends on everything built before in the
        # process. Reset it so a seeded run gives the same new head (and scratch base) in a
        # fresh CLI process and after other modes. (Also seeds Python, NumPy and TF.)
        keras.utils.set_random_seed(int(seed))
    if mode == "freeze_l3":
        model = TransferMLP(base.spec, num_classes, hidden, multi_label, seed=seed)
        model.build((None, None))
        model.base.set_weights(base.get_weights())
        return TransferModel(
            model,
            mode,
            list(model.base.trainable_variables),
            [v for layer in model.mlp for v in layer.trainable_variables],
        )
    model = _tagger(base.spec, num_classes, seed, spec_augment)
    if mode != "scratch":
        copy_base_weights(base, model)
    head = list(model.weight_layers()["fc_audioset"].trainable_variables)
    head_ids = {id(v) for v in head}
    return TransferModel(model, mode, [v for v in model.trainable_variables
                                       if id(v) not in head_ids], head)  # fmt: skip
