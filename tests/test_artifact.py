import json

import pytest

from panns_keras.artifact import ArtifactInfo
from panns_keras.errors import UserError
from panns_keras.models.build import build_model

LABELS = ("a", "b", "c")


@pytest.fixture(scope="module")
def small():
    return build_model(
        "cnn6",
        num_classes=3,
        sample_rate=16000,
        window_size=512,
        hop_size=160,
        mel_bins=32,
        fmax=8000,
    )


def test_tflite_fields_in_the_files_order(small):
    info = ArtifactInfo.of_model(
        small,
        "panns_keras.tflite/1",
        ["clipwise_output", "embedding"],
        LABELS,
        input_samples=32000,
        variant="float16",
    )
    # the key order of panns_keras.json as written before ArtifactInfo existed
    assert list(info.to_json().items()) == [
        ("format", "panns_keras.tflite/1"),
        ("model", "cnn6"),
        ("variant", "float16"),
        ("sample_rate", 16000),
        ("input_samples", 32000),
        ("min_samples", small.spec.min_samples),
        ("outputs", ["clipwise_output", "embedding"]),
        ("num_classes", 3),
        ("frame_hop_samples", 160),
    ]
    back = ArtifactInfo.from_json(json.dumps(info.to_json()), LABELS)
    assert back == info and back.num_classes == 3


def test_savedmodel_fields_leave_out_window_and_variant(small):
    info = ArtifactInfo.of_model(small, "panns_keras.savedmodel/1", ["clipwise_output"], LABELS)
    assert list(info.to_json()) == [
        "format",
        "model",
        "sample_rate",
        "min_samples",
        "outputs",
        "num_classes",
        "frame_hop_samples",
    ]
    assert ArtifactInfo.from_json(info.to_json(), LABELS).input_samples is None


def test_bad_descriptions_are_one_line_errors():
    with pytest.raises(UserError, match=r"^m.tflite: not a panns-keras export description"):
        ArtifactInfo.from_json({"format": "x"}, LABELS, "m.tflite")
    fields = {
        "format": "x",
        "model": "cnn6",
        "sample_rate": 1,
        "min_samples": 1,
        "outputs": ["clipwise_output"],
        "num_classes": 4,
    }
    with pytest.raises(UserError, match="3 labels for 4 classes"):
        ArtifactInfo.from_json(fields, LABELS)
