"""Reading weights saved by panns-keras 0.1 (model directory format ``panns_keras.model_dir/1``).

Keras's ``.weights.h5`` files address each layer by the attribute path of the object that
saved it, and 0.1's model was one subclassed class keeping its layers in attributes, lists
and dicts. :class:`LegacyLayout` rebuilds that attribute layout around the layers of a
current :class:`AudioTagger` (every weight layer is found by its reference name), so
Keras's own loader fills them from an old file: same paths, same container nesting, same
tracking order. Nothing else uses this module.
"""

from __future__ import annotations

import keras
from keras import layers as L

from panns_keras.models.blocks import layer_name


class LegacyLayout(keras.Model):
    """0.1's attribute layout, holding ``model``'s layers; ``load_weights`` fills them."""

    def __init__(self, model):
        super().__init__(name=model.name)
        spec, self._by_name = model.spec, model.weight_layers()
        self.torch_layers = {}  # first, so every later layer is tracked as it is added
        if model.logmel_extractor is not None:
            self.logmel_extractor = model.logmel_extractor
        if model.bn0 is not None:
            self.bn0 = self._add("bn0")
        if model.spec_augmenter is not None:
            self.spec_augmenter = model.spec_augmenter
        if spec.wavegram is not None:
            self.pre_conv0, self.pre_bn0 = self._add("pre_conv0"), self._add("pre_bn0")
            self.pre_blocks = [
                self._adds(f"pre_block{i}", "conv1", "bn1", "conv2", "bn2")
                for i in range(1, len(spec.wavegram.widths))
            ]
            self.pre_block4 = self._adds("pre_block4", "conv1", "bn1", "conv2", "bn2")
            if spec.frontend is None:
                self.wavegram_dropout = L.Dropout(0.2)
        getattr(self, f"_{spec.family}")(spec)
        self.head_dropout = L.Dropout(0.5)
        self.fc1 = self._add("fc1")
        if spec.head.kind == "decision_att":
            self.att, self.cla = self._add("att_block.att"), self._add("att_block.cla")
            self.bn_att = self._add("att_block.bn_att")
        else:
            self.fc_audioset = self._add("fc_audioset")
        del self._by_name
        self.built = True  # holds built layers only

    def _add(self, path):
        layer = self._by_name[layer_name(path)]
        self.torch_layers[path] = layer
        return layer

    def _adds(self, prefix, *names):
        return [self._add(f"{prefix}.{n}") for n in names]

    def _conv_block(self, path, kernel=3):
        names = ("conv1", "bn1", "conv2", "bn2") if kernel == 3 else ("conv1", "bn1")
        return self._adds(path, *names)

    def _convnet(self, spec):
        self.conv_blocks = []
        for i in range(1, len(spec.backbone.widths) + 1):  # conv_block1 even where unused
            self.conv_blocks.append(self._conv_block(f"conv_block{i}", spec.backbone.kernel))
        self.conv_dropout = L.Dropout(0.2)

    def _resnet(self, spec):
        b = spec.backbone
        self.conv_block1 = self._conv_block("conv_block1")
        self.res_blocks = []
        inplanes, expansion = 64, (4 if b.block == "bottleneck" else 1)
        for li, (n, planes, stride) in enumerate(zip(b.layers, b.planes, b.strides), start=1):
            for bi in range(n):
                s, p = (stride if bi == 0 else 1), f"resnet.layer{li}.{bi}"
                blk = {"stride": s}
                names = ("conv1", "bn1", "conv2", "bn2")
                if b.block != "basic":
                    names += ("conv3", "bn3")
                blk["convs"] = self._adds(p, *names)
                if s != 1 or inplanes != planes * expansion:
                    j = 1 if s == 2 else 0
                    blk["down"] = self._adds(p, f"downsample.{j}", f"downsample.{j + 1}")
                inplanes = planes * expansion
                self.res_blocks.append(blk)
        self.conv_block_after1 = self._conv_block("conv_block_after1")
        self.conv_dropout, self.block_dropout = L.Dropout(0.2), L.Dropout(0.1)

    def _mobilenet_v1(self, spec):
        self.stem = self._adds("features.0", "0", "2")
        self.mb_stages = []
        for i, (_, stride) in enumerate(spec.backbone.stages, start=1):
            p = f"features.{i}"
            self.mb_stages.append(
                {"stride": stride, "dw": self._adds(p, "0", "2"), "pw": self._adds(p, "4", "5")}
            )

    def _mobilenet_v2(self, spec):
        b = spec.backbone
        self.stem = self._adds("features.0", "0", "2")
        self.mb_stages = []
        inp, idx = b.stem, 1
        for t, c, n, s in b.stages:
            for k in range(n):
                stride, p = (s if k == 0 else 1), f"features.{idx}.conv"
                stage = {"stride": stride, "residual": stride == 1 and inp == c, "expand": None}
                if t == 1:
                    stage["dw"], stage["pw"] = self._adds(p, "0", "2"), self._adds(p, "4", "5")
                else:
                    stage["expand"] = self._adds(p, "0", "1")
                    stage["dw"], stage["pw"] = self._adds(p, "3", "5"), self._adds(p, "7", "8")
                self.mb_stages.append(stage)
                inp, idx = c, idx + 1
        self.last_conv = self._adds(f"features.{idx}", "0", "1")

    def _leenet(self, spec):
        b = spec.backbone
        self.lee_blocks = []
        for i, (_, stride, pool) in enumerate(b.blocks, start=1):
            names = ("conv1", "bn1") + (("conv2", "bn2") if b.convs_per_block == 2 else ())
            self.lee_blocks.append(
                {
                    "stride": stride,
                    "pool": pool,
                    "convs": self._adds(f"conv_block{i}", *names),
                    "dropout": i <= b.dropout_blocks,
                }
            )
        self.block_dropout = L.Dropout(b.dropout)

    def _dainet(self, spec):
        self.conv0, self.bn0 = self._add("conv0"), self._add("bn0")
        self.dai_blocks = []
        for i in range(1, len(spec.backbone.widths) + 1):
            p = f"conv_block{i}"
            convs = self._adds(p, *(f"{k}{j}" for j in range(1, 5) for k in ("conv", "bn")))
            self.dai_blocks.append(
                {"convs": convs, "down": self._adds(p, "downsample", "bn_downsample")}
            )

    def _res1dnet(self, spec):
        b = spec.backbone
        self.conv0, self.bn0 = self._add("conv0"), self._add("bn0")
        self.res_blocks = []
        inplanes = 64
        for li, (n, planes, stride) in enumerate(zip(b.layers, b.planes, b.strides), start=1):
            for bi in range(n):
                s, p = (stride if bi == 0 else 1), f"resnet.layer{li}.{bi}"
                blk = {"stride": s, "convs": self._adds(p, "conv1", "bn1", "conv2", "bn2")}
                if s != 1 or inplanes != planes:
                    j = 1 if s != 1 else 0
                    blk["down"] = self._adds(p, f"downsample.{j}", f"downsample.{j + 1}")
                inplanes = planes
                self.res_blocks.append(blk)
        self.block_dropout = L.Dropout(0.1)
