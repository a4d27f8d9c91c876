"""`AudioTagger`: the task model of every PANNs system, built from a :class:`ModelSpec`.

waveform -> pad to the minimum length -> front end (log-mel, Wavegram or raw waveform) ->
bn0 -> SpecAugment (training) -> mixup (training, when a lambda is given) -> backbone ->
head -> the reference's output dict.

The backbone is one functional ``keras.Model`` per family (``convnet.py``, ``resnet.py``,
``mobilenet.py``, ``leenet.py``, ``dainet.py``, ``res1dnet.py``), the Wavegram branch is a
functional front end (``wavegram.py``) and the head another (``heads.py``). Every layer
with weights is named after its reference module path (``.`` -> ``_``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from panns_keras.data.formats import Label, to_labels
from panns_keras.models import blocks as B
from panns_keras.models import spec as S
from panns_keras.models.convnet import convnet_backbone, convnet_unused, time_ratio
from panns_keras.models.dainet import dainet_backbone, dainet_unused
from panns_keras.models.eat_frontend import EATLogMel
from panns_keras.models.heads import build_head, head_unused
from panns_keras.models.layers import LogMelSpectrogram, SpecAugment, do_mixup
from panns_keras.models.leenet import leenet_backbone
from panns_keras.models.mn import dymn_backbone, dymn_head, mn_backbone, mn_head
from panns_keras.models.mobilenet import mobilenet_v1_backbone, mobilenet_v2_backbone
from panns_keras.models.res1dnet import res1dnet_backbone
from panns_keras.models.resnet import resnet_backbone
from panns_keras.models.wavegram import wavegram_frontend

BACKBONES = {
    "convnet": convnet_backbone,
    "resnet": resnet_backbone,
    "mobilenet_v1": mobilenet_v1_backbone,
    "mobilenet_v2": mobilenet_v2_backbone,
    "leenet": leenet_backbone,
    "dainet": dainet_backbone,
    "res1dnet": res1dnet_backbone,
    "mn": mn_backbone,
    "dymn": dymn_backbone,
}
# Families with their own head (EfficientAT's classifier); the others take heads.build_head.
HEADS = {"mn": mn_head, "dymn": dymn_head}
_FAMILY_SPECS = {
    "convnet": S.ConvNetSpec,
    "resnet": S.ResNetSpec,
    "mobilenet_v1": S.MobileNetV1Spec,
    "mobilenet_v2": S.MobileNetV2Spec,
    "leenet": S.LeeNetSpec,
    "dainet": S.DaiNetSpec,
    "res1dnet": S.Res1dNetSpec,
    "mn": S.MNSpec,
    "dymn": S.DyMNSpec,
}
# The front-end spec of each reference (ModelSpec.reference).
_FRONTEND_SPECS = {"panns": S.LogMelSpec, "efficientat": S.EATLogMelSpec}
LOGMEL_MIXUP = ("logmel", "wavegram_logmel")
WAVEGRAM_MIXUP = ("wavegram", "wavegram_logmel")


def spec_from_dict(d: dict[str, Any]) -> S.ModelSpec:
    """Inverse of :meth:`ModelSpec.to_dict`."""
    d = dict(d)

    def build(cls, value):
        if value is None:
            return None
        kw = {f.name: _tuplify(value[f.name]) for f in dataclasses.fields(cls) if f.name in value}
        return cls(**kw)

    d["backbone"] = build(_FAMILY_SPECS[d["family"]], d["backbone"])
    d["head"] = build(S.HeadSpec, d["head"])
    d["frontend"] = build(_FRONTEND_SPECS[d.get("reference", "panns")], d.get("frontend"))
    d["wavegram"] = build(S.WavegramSpec, d.get("wavegram"))
    d["spec_augment"] = build(S.SpecAugmentSpec, d.get("spec_augment"))
    d["unused"] = tuple(d.get("unused", ()))
    return S.ModelSpec(**d)


def _tuplify(v):
    return tuple(_tuplify(x) for x in v) if isinstance(v, list) else v


@keras.saving.register_keras_serializable(package="panns_keras")
class AudioTagger(keras.Model):
    """A PANNs audio tagger: front end, backbone and head of one reference system.

    Args:
        spec: the model spec (or its ``to_dict()`` form).
        seed: seed for SpecAugment and dropout (None: random).
        labels: the classes in output order (kept by ``.keras`` files): display names, or
            :class:`~panns_keras.data.formats.Label` objects (which carry the ids too).
        label_ids: class ids (AudioSet MIDs or the data set's own), in output order, beside
            ``labels`` given as display names.

    Call:
        ``model(waveform, training=False, mixup_lambda=None, return_intermediates=False)``
        with a float32 waveform ``(B, samples)`` at ``spec.sample_rate``. Inputs shorter
        than ``spec.min_samples`` are zero-padded at the end. With ``mixup_lambda`` of shape
        ``(B,)`` (B even, reference layout ``[l0, 1 - l0, l1, 1 - l1, ...]``) pairs are mixed
        in the model's mixup domain (``spec.mixup_domain``: log-mel, waveform or Wavegram)
        and the outputs have batch B / 2.

    Returns:
        dict: ``clipwise_output`` (B, classes); ``embedding`` (B, E) for clip models;
        ``framewise_output`` (B, T, classes) for decision-level models (T log-mel frames);
        plus ``logits`` and ``logmel`` (log-mel models) when ``return_intermediates``.
        Always float32.

    Public parts: ``backbone`` (functional, ``(B, T', C)`` features), ``head``
    (functional), ``logmel_extractor`` (the front-end layer, None for waveform models: its
    DFT bases and mel matrix), ``wavegram`` (functional, Wavegram models), :meth:`logmel`,
    :meth:`frame_embeddings`, :meth:`pad`, :meth:`sublayers`, :meth:`weight_layers`,
    ``class_labels`` (the :class:`~panns_keras.data.formats.Label` list, or None) and its
    views ``labels`` (display names; settable) and ``label_ids``.

    Example:
        >>> model = panns_keras.build_model("cnn6")
        >>> out = model(np.zeros((2, 32000), "float32"))
        >>> out["clipwise_output"].shape
        (2, 527)
    """

    def __init__(
        self,
        spec: S.ModelSpec | dict,
        seed: int | None = None,
        labels: Sequence[str | Label] | None = None,
        label_ids: Sequence[str] | None = None,
        **kwargs,
    ):
        if isinstance(spec, dict):
            spec = spec_from_dict(spec)
        kwargs.setdefault("name", spec.name)
        super().__init__(**kwargs)
        for what, values in (("labels", labels), ("label_ids", label_ids)):
            if values is not None and len(values) != spec.num_classes:
                raise ValueError(f"{len(values)} {what} for {spec.num_classes} classes")
        self.spec = spec
        self.seed = seed
        self.class_labels = to_labels(labels, label_ids)
        seeds = B.Seeds(seed)
        fe = spec.frontend
        self.logmel_extractor = self.bn0 = self.spec_augmenter = self.wavegram = None
        if isinstance(fe, S.EATLogMelSpec):
            self.logmel_extractor = EATLogMel(
                **dataclasses.asdict(fe), seed=seed, name="logmel_extractor"
            )
        elif fe is not None:
            self.logmel_extractor = LogMelSpectrogram(
                fe.sample_rate,
                fe.window_size,
                fe.hop_size,
                fe.mel_bins,
                fe.fmin,
                fe.fmax,
                name="logmel_extractor",
            )
        # EfficientAT models have no bn0; Wavegram-CNN14 has an unused one.
        if (fe is not None and spec.reference == "panns") or "bn0" in spec.unused:
            self.bn0 = B.batch_norm("bn0", dtype="float32")
            self.bn0.build((None, None, fe.mel_bins if fe is not None else 64))
        if spec.spec_augment is not None and "spec_augmenter" not in spec.unused:
            sa = spec.spec_augment
            self.spec_augmenter = SpecAugment(
                sa.time_drop_width,
                sa.time_stripes_num,
                sa.freq_drop_width,
                sa.freq_stripes_num,
                seed=seed,
                name="spec_augmenter",
                dtype="float32",
            )
        if spec.wavegram is not None:
            self.wavegram = wavegram_frontend(spec)
        self.backbone = BACKBONES[spec.family](spec, seeds)
        self.head = HEADS.get(spec.family, build_head)(
            spec, seeds, int(self.backbone.output.shape[-1])
        )
        # Modules the reference creates (and checkpoints) but never calls.
        unused = {"convnet": convnet_unused, "dainet": dainet_unused}.get(spec.family)
        unused = (unused(spec) if unused else []) + head_unused(spec)
        self._unused_names = tuple(layer.name for layer in unused)
        for layer in unused:  # one attribute each: tf.train.Checkpoint tracks attributes
            setattr(self, f"unused_{layer.name}", layer)
        self.built = True

    def build(self, input_shape=None):  # every part is built in __init__
        self.built = True

    # ------------------------------------------------------------------ public parts
    @property
    def unused_layers(self) -> list:
        """Modules the reference creates (and checkpoints) but never calls, built."""
        return [getattr(self, f"unused_{name}") for name in self._unused_names]

    def sublayers(self) -> list:
        """Every layer of the model, recursively (front end, backbone, head, unused)."""
        found = []

        def visit(layer):
            found.append(layer)
            if isinstance(layer, keras.Model):
                for sub in layer.layers:
                    visit(sub)

        for part in (
            self.logmel_extractor,
            self.bn0,
            self.spec_augmenter,
            self.wavegram,
            self.backbone,
            self.head,
            *self.unused_layers,
        ):
            if part is not None:
                visit(part)
        return found

    def pad(self, waveform):
        """``waveform`` zero-padded at the end to at least ``spec.min_samples`` samples."""
        x = ops.convert_to_tensor(waveform, "float32")
        short = int(self.spec.min_samples) - ops.shape(x)[1]
        if isinstance(short, int):
            return x if short <= 0 else ops.pad(x, [[0, 0], [0, short]])
        return ops.pad(x, [[0, 0], [0, ops.maximum(short, 0)]])

    def logmel(self, waveform):
        """Log-mel ``(B, T, mel_bins)`` of ``waveform``: the reference's front-end output,
        time first for every model (PANNs: dB, before bn0; EfficientAT: ``(log(mel + 1e-5) +
        4.5) / 5``, the reference's ``(B, mel, T)`` transposed). Log-mel models only."""
        if self.logmel_extractor is None:
            raise ValueError(f"{self.spec.name} reads the waveform; it has no log-mel")
        return self.logmel_extractor(self.pad(waveform))

    def frame_embeddings(self, waveform, training=False):
        """Backbone features ``(B, T', C)`` before the head pools over time."""
        inputs, _ = self._backbone_inputs(self.pad(waveform), training, None)
        return self.backbone(inputs, training=training)

    def weight_layers(self) -> dict[str, keras.layers.Layer]:
        """Every layer that holds weights, by name (reference module path, ``.`` -> ``_``),
        the unused reference modules included: what a checkpoint converter maps onto."""
        found: dict[str, keras.layers.Layer] = {}
        for layer in self.sublayers():
            if layer.weights and not isinstance(layer, keras.Model):
                if layer.name in found:
                    raise ValueError(f"two layers named {layer.name} in {self.name}")
                found[layer.name] = layer
        return found

    # ------------------------------------------------------------------ forward
    def _backbone_inputs(self, wave, training, mixup_lambda):
        spec, mixing = self.spec, mixup_lambda is not None
        if mixing and spec.mixup_domain == "waveform":
            wave = do_mixup(wave, mixup_lambda)
        if spec.family != "convnet" and spec.frontend is None:
            return wave, None  # the 1-D nets read the waveform
        inputs, logmel = [], None
        if spec.frontend is not None:
            logmel = self.logmel_extractor(wave, training=training)  # (B, T, mel)
            x = self.bn0(logmel, training=training) if self.bn0 is not None else logmel
            if self.spec_augmenter is not None:
                x = self.spec_augmenter(x, training=training)
            if mixing and spec.mixup_domain in LOGMEL_MIXUP:
                x = do_mixup(x, mixup_lambda)
            inputs.append(ops.expand_dims(x, -1))  # (B, T, mel, 1)
        if self.wavegram is not None:
            a = self.wavegram(wave, training=training)
            if mixing and spec.mixup_domain in WAVEGRAM_MIXUP:
                a = do_mixup(a, mixup_lambda)
            inputs.append(a)
        return (inputs if len(inputs) > 1 else inputs[0]), logmel

    def call(self, waveform, training=None, mixup_lambda=None, return_intermediates=False):
        wave = self.pad(waveform)
        inputs, logmel = self._backbone_inputs(wave, training, mixup_lambda)
        features = self.backbone(inputs, training=training)  # (B, T', C)
        head = self.head(features, training=training)
        if self.spec.head.kind == "clip":
            out = {"clipwise_output": ops.sigmoid(head["logits"]), "embedding": head["embedding"]}
        else:
            # Each segment repeated time_ratio times, then the last repeated up to T frames.
            frames = 1 + ops.shape(wave)[1] // self.spec.frontend.hop_size
            segmentwise = head["segmentwise_output"]
            idx = ops.minimum(
                ops.arange(frames) // time_ratio(self.spec), ops.shape(segmentwise)[1] - 1
            )
            out = {
                "clipwise_output": head["clipwise_output"],
                "framewise_output": ops.take(segmentwise, idx, axis=1),
            }
        if return_intermediates or self._output_logits:  # single-label compile: logits too
            out["logits"] = head["logits"]
        if return_intermediates and logmel is not None:
            out["logmel"] = logmel
        return out

    # ------------------------------------------------------------------ labels
    @property
    def class_labels(self) -> tuple[Label, ...] | None:
        """The classes in output order (None when the model was given no labels)."""
        return self._class_labels

    @class_labels.setter
    def class_labels(self, value) -> None:
        value = to_labels(value)
        self._class_labels = tuple(value) if value is not None else None

    def _label_field(self, field: str) -> tuple[str, ...] | None:
        """One field of every class label, in output order (None when any is not known)."""
        values = tuple(getattr(label, field) for label in self._class_labels or ())
        if self._class_labels is None or any(v is None for v in values):
            return None
        return values

    @property
    def labels(self) -> tuple[str, ...] | None:
        """Display names of the classes in output order (None when not known)."""
        return self._label_field("display_name")

    @labels.setter
    def labels(self, names) -> None:
        ids = self.label_ids
        if names is None:
            self.class_labels = to_labels(None, ids)
            return
        names = list(names)
        # Ids stay with plain display names of the same count; Labels and pairs carry their own.
        if ids is not None and (
            len(ids) != len(names) or not all(isinstance(n, str) for n in names)
        ):
            ids = None
        self.class_labels = to_labels(names, ids)

    @property
    def label_ids(self) -> tuple[str, ...] | None:
        """Class ids in output order (None when not known)."""
        return self._label_field("mid")

    # ------------------------------------------------------------------ serialisation
    def get_config(self):
        return {
            "spec": self.spec.to_dict(),
            "seed": self.seed,
            "labels": list(self.labels) if self.labels is not None else None,
            "label_ids": list(self.label_ids) if self.label_ids is not None else None,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # ------------------------------------------------------------------ presets (keras-hub)
    @classmethod
    def from_preset(cls, name_or_path: str, tables: list[str] | None = None) -> AudioTagger:
        """A pretrained model by preset name (``"cnn14"``), model directory or ``.keras`` file.

        keras-hub style; the same as :func:`panns_keras.load_model`. The loader sits below
        this class (:func:`panns_keras.models.loader.load_as`), which is passed down.
        """
        from panns_keras.models.loader import load_as

        return load_as(cls, name_or_path, tables)

    def save_to_preset(self, preset_dir, *, source: str | None = None, license: str | None = None):
        """Write the whole model folder (keras-hub's ``save_to_preset``): ``config.json``,
        ``labels.csv``, ``model.weights.h5`` and ``metadata.json`` (Keras and package
        versions, parameter count, date, ``source`` and ``license`` of the weights, sample
        rate, class count), atomically. :meth:`from_preset` and ``load_model`` read it back.
        """
        from panns_keras.errors import UserError
        from panns_keras.models.saving import save_model_dir

        if self.class_labels is None:
            raise UserError(f"{self.name}: no labels to save; set model.labels first")
        return save_model_dir(self, preset_dir, self.class_labels, source=source, license=license)

    # ------------------------------------------------------------------ the Keras way
    _output_logits = False  # set by compile(task="single_label"): call() adds "logits"
    _task_output = None  # the output(s) compile()'s loss and metrics read (None: all)

    def compile(
        self, optimizer="adam", loss=None, metrics=None, *, task: str = "multi_label", **kwargs
    ):
        """``keras.Model.compile`` with defaults for tagging; anything given overrides them.

        Args:
            optimizer: default ``"adam"`` (Keras's Adam, learning rate 1e-3).
            loss: default, by ``task``: binary cross-entropy on the probabilities
                ``clipwise_output`` (``"multi_label"``; the model outputs probabilities, so
                ``from_logits=False``), or categorical cross-entropy on the ``logits`` with
                ``from_logits=True`` (``"single_label"``: softmax over the classes). A loss
                given here reads the same output (``loss="binary_crossentropy"`` is applied
                to ``clipwise_output``); a dict keyed by output names is passed to Keras
                with those outputs only.
            metrics: default ``[mAP, mAUC]`` (:mod:`panns_keras.models.keras_metrics`, the
                definitions of :mod:`panns_keras.metrics`, computed once per epoch: NaN in
                per-batch logs; ``val_mAP`` in ``fit``'s logs) for ``"multi_label"``,
                ``["categorical_accuracy"]`` for ``"single_label"``; ``[]`` for none.
            task: ``"multi_label"`` (targets multi-hot, AudioSet style) or ``"single_label"``
                (targets one-hot, one class per clip: environmental sound or keyword sets).
            **kwargs: the rest of ``keras.Model.compile`` (``jit_compile``,
                ``steps_per_execution``, ...).

        Example:
            >>> model.compile()  # Adam, BCE on clipwise_output, mAP and mAUC
            >>> model.fit(waveforms, multi_hot, epochs=3, validation_split=0.2)
        """
        from panns_keras.errors import UserError
        from panns_keras.models import keras_metrics

        if task not in ("multi_label", "single_label"):
            raise UserError(f"task={task!r}: use 'multi_label' or 'single_label'")
        single = task == "single_label"
        if single and self.spec.head.kind != "clip":
            raise UserError(
                f"{self.spec.name}: task='single_label' needs a clip-level model "
                "(a decision-level model's logits are per frame)"
            )
        key = "logits" if single else "clipwise_output"
        if loss is None:
            loss = (
                keras.losses.CategoricalCrossentropy(from_logits=True)
                if single
                else keras.losses.BinaryCrossentropy(from_logits=False)
            )
        if metrics is None:
            n = int(self.spec.num_classes)
            metrics = (
                ["categorical_accuracy"]
                if single
                else [keras_metrics.MeanAveragePrecision(n), keras_metrics.MeanAUC(n)]
            )
        self._output_logits = single
        self._task_output = tuple(loss) if isinstance(loss, dict) else key
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config and self._output_logits:
            config["task"] = "single_label"
        return config

    def compile_from_config(self, config):
        """Re-compiles a ``.keras`` file's model as it was compiled (task included)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def _select(self, y_pred):
        """The output(s) compile()'s loss and metrics read: one, or those a dict loss names."""
        if self._task_output is None or not isinstance(y_pred, dict):
            return y_pred
        if isinstance(self._task_output, tuple):
            return {k: y_pred[k] for k in self._task_output}
        return y_pred[self._task_output]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return super().compute_loss(x, y, self._select(y_pred), sample_weight, training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        from panns_keras.models import keras_metrics

        # mAP / mAUC: NaN in the step's logs, computed once per epoch from their state
        # (Keras's epoch logs); exact per step they would sort the epoch's scores every step.
        with keras_metrics.deferred():
            return super().compute_metrics(x, y, self._select(y_pred), sample_weight)

    @staticmethod
    def _keras_data(data, with_targets=True):
        """A dataset of ``panns_keras.data``'s dict batches (``waveform``, ``target``) as
        ``(x, y)`` pairs (``x`` alone for predict); the padded clips of an eval dataset's
        last batch (``mask`` 0) dropped. Anything else is returned unchanged."""
        spec = getattr(data, "element_spec", None)
        if not isinstance(spec, dict) or "waveform" not in spec:
            return data
        if "mask" in spec:  # make_eval_dataset: every clip once, the last batch padded
            batch = spec["mask"].shape[0]
            data = data.unbatch().filter(lambda b: b["mask"] > 0).batch(batch)
        if not with_targets:
            return data.map(lambda b: b["waveform"])
        return data.map(lambda b: (b["waveform"], b["target"]))

    def fit(self, x=None, y=None, *args, validation_data=None, **kwargs):
        """``keras.Model.fit``; ``x`` (and ``validation_data``) may also be a dataset from
        :mod:`panns_keras.data` (dict batches of ``waveform`` and ``target``)."""
        if validation_data is not None:
            validation_data = self._keras_data(validation_data)
        return super().fit(self._keras_data(x), y, *args, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """``keras.Model.evaluate``; ``x`` may be a :mod:`panns_keras.data` dataset (the
        padded clips of its last batch are left out)."""
        return super().evaluate(self._keras_data(x), y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        """``keras.Model.predict`` on waveforms ``(B, samples)``: the output dict of numpy
        arrays (``clipwise_output``, ...). A :mod:`panns_keras.data` dataset works too."""
        return super().predict(self._keras_data(x, with_targets=False), *args, **kwargs)

    # ------------------------------------------------------------------ transfer, the Keras way
    def freeze_backbone(self, until: str | None = None) -> list[str]:
        """Freeze the front end's batch norm (``bn0``; and the Wavegram branch of Wavegram
        models) and the backbone's layers with weights, from the first up to (not including)
        the first layer whose name starts with ``until``
        (``until=None``: the whole backbone, as ``model.backbone.trainable = False``).
        Frozen BatchNorm layers run in inference mode. Returns the frozen layer names.

        Example:
            >>> model.freeze_backbone(until="conv_block3")  # Cnn6: blocks 1 and 2 frozen
        """
        from panns_keras.errors import UserError

        layers = [layer for layer in self.backbone.layers if layer.weights]
        names = [layer.name for layer in layers]
        stop = len(layers)
        if until is not None:
            stop = next((i for i, n in enumerate(names) if n.startswith(until)), None)
            if stop is None:
                raise UserError(
                    f"until={until!r}: no backbone layer of that name ({', '.join(names[:6])}, ...)"
                )
        frozen = [layer for layer in (self.bn0, self.wavegram) if layer is not None]
        frozen += layers[:stop]
        for layer in frozen:
            layer.trainable = False
        return [layer.name for layer in frozen]

    def with_new_head(
        self,
        num_classes: int,
        labels=None,
        *,
        seed: int | None = None,
        hidden: tuple[int, ...] = (),
    ) -> AudioTagger:
        """A new model for ``num_classes`` new classes: this model's front end, backbone and
        embedding weights, a freshly initialised classifier (and ``hidden`` MLP layers before
        it, as ``panns-keras finetune``'s ``freeze_l3``). This model is not modified.

        Example:
            >>> digits = panns_keras.load_model("cnn14").with_new_head(10, labels=names)
            >>> digits.backbone.trainable = False  # a linear probe; leave it for fine-tuning
        """
        head = dataclasses.replace(self.spec.head, hidden=tuple(int(h) for h in hidden))
        spec = dataclasses.replace(self.spec, num_classes=int(num_classes), head=head)
        model = type(self)(spec, seed=seed, labels=labels)
        theirs = self.weight_layers()
        for name, layer in model.weight_layers().items():
            old = theirs.get(name)
            if name in CLASSIFIER_LAYERS or old is None:
                continue
            values = old.get_weights()
            if [v.shape for v in values] == [tuple(w.shape) for w in layer.weights]:
                layer.set_weights(values)
        return model


# The layers a new label set replaces (train/warm_start.py's CLASSIFIER names the same).
CLASSIFIER_LAYERS = ("fc_audioset", "att_block_att", "att_block_cla", "att_block_bn_att")
