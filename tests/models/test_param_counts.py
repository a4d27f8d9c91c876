"""Trainable parameter counts equal the reference (paper Table XII for the 15 systems)."""

import numpy as np
import pytest

import panns_keras
from panns_keras.models.registry import MODEL_SPECS, PAPER_SYSTEMS

# Paper Table XII (= reference code, measured) and reference variants (§11 of the spec).
TRAINABLE = {
    "cnn6": 4_837_455, "cnn10": 5_219_279, "cnn14": 80_753_615, "resnet22": 63_675_087,
    "resnet38": 73_783_247, "resnet54": 104_318_159, "mobilenet_v1": 4_796_303,
    "mobilenet_v2": 4_075_343, "dainet19": 4_385_807, "leenet11": 748_367,
    "leenet24": 10_003_791, "res1dnet31": 80_464_463, "res1dnet51": 106_538_063,
    "wavegram_cnn14": 80_991_759, "wavegram_logmel_cnn14": 81_065_487,
    "cnn14_no_specaug": 80_753_615, "cnn14_no_dropout": 80_753_615,
    "cnn14_mixup_time_domain": 80_753_615, "cnn14_16k": 80_753_615, "cnn14_8k": 80_753_615,
    "cnn14_mel32": 80_753_551, "cnn14_mel128": 80_753_743, "cnn14_emb512": 76_796_879,
    "cnn14_emb128": 75_807_695, "cnn14_emb32": 75_560_399,
    "cnn14_decision_level_max": 80_753_615, "cnn14_decision_level_avg": 80_753_615,
    "cnn14_decision_level_att": 81_834_492, "wavegram_logmel128_cnn14": 81_262_735,
}  # fmt: skip


def test_table_covers_registry():
    assert set(TRAINABLE) == set(MODEL_SPECS)
    assert set(PAPER_SYSTEMS) <= set(TRAINABLE) and len(PAPER_SYSTEMS) == 15


@pytest.mark.parametrize("name", sorted(MODEL_SPECS))
def test_trainable_parameter_count(name):
    model = panns_keras.build_model(name)  # builds symbolically: nothing is run
    count = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert count == TRAINABLE[name]
