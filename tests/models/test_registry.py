import pytest

import panns_keras
from panns_keras.errors import UserError
from panns_keras.models.registry import canonical_name, infer_model_name
from tests.helpers.narrow import narrow_model


def test_list_models_has_all_29_reference_classes():
    from panns_keras.models.registry import MODEL_SPECS

    names = panns_keras.list_models()
    assert len([n for n in names if MODEL_SPECS[n].reference == "panns"]) == 29
    # and every EfficientAT architecture of a released AudioSet checkpoint
    released = {"mn01", "mn02", "mn04", "mn05", "mn10", "mn20", "mn30", "mn40", "mn10_fc"}
    released |= {"mn10_fc_s2221", "mn10_fc_s2211", "dymn04", "dymn10", "dymn20"}
    released |= {f"mn10_hop_{ms}" for ms in (5, 15, 20, 25)}
    released |= {f"mn10_mels_{n}" for n in (40, 64, 256)}
    assert {n for n in names if MODEL_SPECS[n].reference == "efficientat"} == released


@pytest.mark.parametrize("name", sorted(panns_keras.list_models()))
def test_every_model_builds_and_its_config_round_trips(name):
    """Every architecture builds (narrow widths: the same layers, stages and strides; the
    full-width builds are tests/models/test_golden.py's) and rebuilds from its config."""
    from panns_keras.models.tagger import AudioTagger

    model = narrow_model(name, labels=[f"c{i}" for i in range(527)])
    assert model.spec.name == name and model.count_params() > 0
    clone = AudioTagger.from_config(model.get_config())
    assert clone.spec == model.spec and clone.get_config() == model.get_config()


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("cnn14", "cnn14"),
        ("Cnn14", "cnn14"),
        ("Cnn14_DecisionLevelAtt", "cnn14_decision_level_att"),
        ("Wavegram_Logmel_Cnn14", "wavegram_logmel_cnn14"),
        ("MobileNetV1", "mobilenet_v1"),
        ("cnn14-16k", "cnn14_16k"),
        ("ResNet38", "resnet38"),
    ],
)
def test_canonical_name(given, name):
    assert canonical_name(given) == name


def test_unknown_name_is_a_value_error_with_close_matches():
    with pytest.raises(ValueError, match="valid names: .*cnn14") as info:
        panns_keras.build_model("cnn15")
    assert str(info.value).startswith("cnn15: unknown model; did you mean cnn14, cnn10 or cnn6? ")
    assert isinstance(info.value, KeyError)  # what 0.1 raised, for callers that catch it
    assert isinstance(info.value, UserError)  # the CLI prints it as one line
    with pytest.raises(ValueError, match="^resnet37: unknown model; did you mean resnet38, "):
        canonical_name("resnet37")
    with pytest.raises(
        ValueError,
        match=r"^MobileNetV3: unknown model; did you mean "
        r"mobilenet_v2 or mobilenet_v1\? \(valid names: cnn10, ",
    ):
        canonical_name("MobileNetV3")
    with pytest.raises(ValueError, match=r"^xyz: unknown model; \(valid names: "):
        canonical_name("xyz")


@pytest.mark.parametrize(
    ("filename", "name"),
    [
        ("Cnn14_mAP=0.431.pth", "cnn14"),
        ("Cnn14_16k_mAP=0.438.pth", "cnn14_16k"),
        ("/x/Cnn14_DecisionLevelMax_mAP=0.385.pth", "cnn14_decision_level_max"),
        ("Wavegram_Logmel_Cnn14_mAP=0.439.pth", "wavegram_logmel_cnn14"),
        ("Cnn6_golden_zip.pth", "cnn6"),
        ("ResNet22_mAP=0.430.pth", "resnet22"),
    ],
)
def test_infer_model_name(filename, name):
    assert infer_model_name(filename) == name


def test_infer_model_name_fails_clearly():
    with pytest.raises(KeyError, match="pass --arch"):
        infer_model_name("my_model.pth")


def test_overrides():
    model = panns_keras.build_model(
        "cnn6",
        num_classes=10,
        sample_rate=16000,
        window_size=512,
        hop_size=160,
        fmax=8000,
        embedding_size=128,
    )
    assert model.spec.sample_rate == 16000 and model.spec.frontend.window_size == 512
    assert model.spec.head.embedding_size == 128 and model.spec.num_classes == 10
    with pytest.raises(ValueError, match="unknown model override"):
        panns_keras.build_model("cnn6", windowsize=1)


def test_labels_setter_takes_names_or_labels():
    """``model.labels`` takes display names (ids kept) or Labels (which bring their own ids)."""
    from panns_keras.data.formats import Label
    from panns_keras.models.tagger import AudioTagger

    spec = panns_keras.build_model("cnn6", num_classes=2).spec
    model = AudioTagger(spec, labels=["a", "b"], label_ids=["/m/a", "/m/b"])
    model.labels = ["p", "q"]
    assert model.labels == ("p", "q") and model.label_ids == ("/m/a", "/m/b")
    model.labels = [Label(0, "x", "X"), Label(1, "y", "Y")]
    assert model.labels == ("X", "Y") and model.label_ids == ("x", "y")
    assert model.class_labels == (Label(0, "x", "X"), Label(1, "y", "Y"))
