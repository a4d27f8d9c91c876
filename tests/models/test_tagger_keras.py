"""The Keras way on AudioTagger (issue 36): compile() defaults, fit / evaluate / predict on
arrays and datasets, callbacks, transfer by freezing and a new head, preset folders.

Backend-agnostic (``make test-jax`` runs it under ``KERAS_BACKEND=jax``); the tf.data and
prepared-shard tests need TensorFlow and are skipped without it.
"""

import dataclasses
import json

import keras
import numpy as np
import pytest

import panns_keras
from panns_keras.errors import UserError
from panns_keras.metrics import evaluate_scores
from panns_keras.models.registry import get_spec
from panns_keras.models.saving import METADATA
from panns_keras.models.tagger import AudioTagger

RATE, CLIP, CLASSES = 8000, 4000, 3
SMALL = dict(
    sample_rate=RATE,
    window_size=256,
    hop_size=80,
    fmax=4000.0,
    mel_bins=32,
    embedding_size=32,
    spec_augment=False,
    backbone=dataclasses.replace(get_spec("cnn6").backbone, widths=(8, 16, 16, 32)),
)
LABELS = ["low", "mid", "high"]


def small_model(seed=0, **kw):
    return panns_keras.build_model(
        "cnn6", num_classes=CLASSES, seed=seed, labels=LABELS, **{**SMALL, **kw}
    )


def tones(n, seed=0, single=False):
    """Class-dependent tones + noise: ``(n, CLIP)`` waveforms and multi-hot targets."""
    rng = np.random.default_rng(seed)
    t = np.arange(CLIP) / RATE
    y = np.zeros((n, CLASSES), "float32")
    x = 0.02 * rng.standard_normal((n, CLIP))
    for i in range(n):
        on = [i % CLASSES] if single else list(np.flatnonzero(rng.random(CLASSES) < 0.5))
        for c in on or [i % CLASSES]:
            y[i, c] = 1.0
            x[i] += 0.3 * np.sin(2 * np.pi * 400.0 * (c + 1) * t)
    return x.astype("float32"), y


def test_the_issue_example_fits():
    """The failing example of issue 36: a string loss on the dict-output model."""
    x, y = tones(8)
    m = panns_keras.build_model("cnn6", num_classes=3, labels=["a", "b", "c"], **SMALL)
    m.compile(optimizer="adam", loss="binary_crossentropy")
    history = m.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_compile_defaults_fit_evaluate_predict_on_arrays():
    x, y = tones(48, seed=1)
    xv, yv = tones(24, seed=2)
    model = small_model()
    model.compile()
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert isinstance(model.loss, keras.losses.BinaryCrossentropy)
    assert not model.loss.get_config()["from_logits"]
    history = model.fit(x, y, batch_size=8, epochs=4, validation_data=(xv, yv), verbose=0)
    h = history.history
    assert {"loss", "mAP", "mAUC", "val_loss", "val_mAP", "val_mAUC"} <= set(h)
    assert h["loss"][-1] < h["loss"][0]
    out = model.predict(xv, batch_size=8, verbose=0)
    assert set(out) == {"clipwise_output", "embedding"}
    assert out["clipwise_output"].shape == (24, CLASSES)
    # evaluate's logs: the same numbers as panns_keras.metrics / numpy BCE on predict's output
    logs = model.evaluate(xv, yv, batch_size=8, return_dict=True, verbose=0)
    want = evaluate_scores(yv, out["clipwise_output"])
    assert logs["mAP"] == pytest.approx(want["mAP"], abs=1e-5)
    assert logs["mAUC"] == pytest.approx(want["mAUC"], abs=1e-5)
    p = np.clip(out["clipwise_output"].astype("float64"), 1e-7, 1 - 1e-7)
    bce = -np.mean(yv * np.log(p) + (1 - yv) * np.log(1 - p))
    assert logs["loss"] == pytest.approx(bce, rel=1e-3)
    assert h["val_mAP"][-1] == pytest.approx(logs["mAP"], abs=1e-5)


def test_what_compile_is_given_overrides_the_defaults():
    x, y = tones(8)
    model = small_model()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", metrics=["mae"])
    logs = model.evaluate(x, y, batch_size=4, return_dict=True, verbose=0)
    assert set(logs) == {"loss", "mae"} and isinstance(model.optimizer, keras.optimizers.SGD)
    p = model.predict(x, verbose=0)["clipwise_output"]
    assert logs["loss"] == pytest.approx(float(np.mean((p - y) ** 2)), rel=1e-4)
    # a dict loss keyed by output name: Keras sees those outputs only
    model.compile(loss={"clipwise_output": "binary_crossentropy"}, metrics=[])
    history = model.fit(x, {"clipwise_output": y}, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    with pytest.raises(UserError, match="task='multi_class'"):
        model.compile(task="multi_class")
    narrow = dataclasses.replace(
        get_spec("cnn14_decision_level_att").backbone, widths=(8, 16, 16, 32, 32, 64)
    )
    sed = panns_keras.build_model(
        "cnn14_decision_level_att", num_classes=CLASSES, **{**SMALL, "backbone": narrow}
    )
    with pytest.raises(UserError, match="needs a clip-level model"):
        sed.compile(task="single_label")


def test_single_label_softmax_cross_entropy_and_accuracy():
    x, y = tones(30, seed=3, single=True)
    model = small_model()
    model.compile(task="single_label", optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(x, y, batch_size=6, epochs=6, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    logs = model.evaluate(x, y, batch_size=6, return_dict=True, verbose=0)
    logits = model.predict(x, verbose=0)["logits"].astype("float64")
    logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True))
    logp -= logits.max(1, keepdims=True)
    assert logs["loss"] == pytest.approx(-np.mean(np.sum(y * logp, axis=1)), rel=1e-3)
    acc = np.mean(logits.argmax(1) == y.argmax(1))
    assert logs["categorical_accuracy"] == pytest.approx(acc)
    assert acc >= 0.6  # three tones apart: learnt, not chance (1/3)


def test_callbacks_tensorboard_checkpoint_early_stopping_on_val_map(tmp_path):
    x, y = tones(16, seed=4)
    model = small_model()
    model.compile()
    best = tmp_path / "best.weights.h5"
    try:  # Keras's TensorBoard callback writes through tf.summary
        import tensorflow  # noqa: F401

        board = [keras.callbacks.TensorBoard(str(tmp_path / "tb"))]
    except ImportError:
        board = []
    callbacks = board + [
        keras.callbacks.ModelCheckpoint(
            str(best), monitor="val_mAP", mode="max", save_best_only=True, save_weights_only=True
        ),
        # no epoch gains 1.0 of mAP: stops after the second epoch when val_mAP is read
        keras.callbacks.EarlyStopping(monitor="val_mAP", mode="max", patience=1, min_delta=1.0),
    ]
    history = model.fit(
        x, y, batch_size=8, epochs=10, validation_data=(x, y), callbacks=callbacks, verbose=0
    )
    assert len(history.history["val_mAP"]) == 2
    if board:
        events = list((tmp_path / "tb").rglob("events.out.tfevents.*"))
        assert {p.parent.name for p in events} >= {"train", "validation"}
    again = small_model(seed=1)  # the best epoch's weights: its val_mAP again
    again.load_weights(str(best))
    again.compile()
    logs = again.evaluate(x, y, batch_size=8, return_dict=True, verbose=0)
    assert logs["mAP"] == pytest.approx(max(history.history["val_mAP"]), abs=1e-5)


def _weights(layers):
    return [w.copy() for layer in layers for w in layer.get_weights()]


def test_frozen_backbone_does_not_move_and_a_new_head_keeps_the_embedding():
    x, y = tones(16, seed=5)
    base = small_model(seed=0)
    new = base.with_new_head(2, labels=["yes", "no"], seed=1)
    assert new.labels == ("yes", "no") and new.spec.num_classes == 2 and base.spec.num_classes == 3
    theirs, ours = base.weight_layers(), new.weight_layers()
    for name in ("conv_block1_conv1", "fc1"):
        for a, b in zip(theirs[name].get_weights(), ours[name].get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    assert ours["fc_audioset"].get_weights()[0].shape == (32, 2)
    # model.backbone.trainable = False: backbone weights and BatchNorm statistics stay put
    new.backbone.trainable = False
    frozen = _weights(new.backbone.layers)
    head_before = _weights([ours["fc_audioset"]])
    new.compile(optimizer=keras.optimizers.Adam(1e-2))
    new.fit(x, y[:, :2], batch_size=8, epochs=1, verbose=0)
    for a, b in zip(frozen, _weights(new.backbone.layers), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(head_before[0], ours["fc_audioset"].get_weights()[0])


def test_freeze_the_first_blocks():
    x, y = tones(8, seed=6)
    model = small_model()
    names = model.freeze_backbone(until="conv_block3")
    blocks = [
        f"conv_block{b}_{part}" for b in (1, 2) for part in ("conv1", "bn1")
    ]  # Cnn6: 5x5 blocks
    assert names[0] == "bn0" and sorted(names[1:]) == sorted(blocks)
    layers = model.weight_layers()
    frozen = [layers[n] for n in names]
    moving = [layers["conv_block3_conv1"]]
    before, before_moving = _weights(frozen), _weights(moving)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    for a, b in zip(before, _weights(frozen), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(before_moving[0], _weights(moving)[0])
    with pytest.raises(UserError, match="until='conv_block9'"):
        model.freeze_backbone(until="conv_block9")


def test_preset_folder_round_trip_with_metadata(tmp_path):
    x, _ = tones(4)
    model = small_model()
    model.save_to_preset(tmp_path / "p", source="test", license="CC0-1.0")
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == [
        "config.json",
        "labels.csv",
        METADATA,
        "model.weights.h5",
    ]
    meta = json.loads((tmp_path / "p" / METADATA).read_text())
    assert meta["keras_version"] == keras.__version__
    assert meta["keras_backend"] == keras.backend.backend()
    assert meta["panns_keras_version"] == panns_keras.__version__
    assert meta["parameter_count"] == model.count_params()
    assert (meta["weights_source"], meta["weights_license"]) == ("test", "CC0-1.0")
    assert (meta["sample_rate"], meta["num_classes"], meta["model"]) == (RATE, CLASSES, "cnn6")
    assert meta["class"] == "panns_keras>AudioTagger" and meta["date"][:2] == "20"
    want = model.predict(x, verbose=0)["clipwise_output"]
    for loaded in (
        AudioTagger.from_preset(str(tmp_path / "p")),
        panns_keras.load_model(tmp_path / "p"),
    ):
        assert loaded.labels == tuple(LABELS)
        np.testing.assert_allclose(loaded.predict(x, verbose=0)["clipwise_output"], want, atol=1e-6)
    unlabelled = panns_keras.build_model("cnn6", num_classes=CLASSES, **SMALL)
    with pytest.raises(UserError, match="no labels to save"):
        unlabelled.save_to_preset(tmp_path / "q")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    pytest.importorskip("tensorflow")
    from tests.helpers.train_data import write_data

    root = tmp_path_factory.mktemp("shards")
    write_data(root / "train", clips_per_class=6)
    write_data(root / "eval", clips_per_class=3, name="eval", seed=1)
    return root


def test_fit_on_tf_data_pairs_and_on_prepared_shards(shards):
    import tensorflow as tf

    from panns_keras.data.pipeline import make_eval_dataset, make_train_dataset
    from tests.helpers.train_data import tiny_config

    x, y = tones(12, seed=7)
    model = small_model()
    model.compile()
    pairs = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    history = model.fit(pairs, epochs=1, verbose=0)
    assert np.isfinite(history.history["mAP"][0])
    out = model.predict(tf.data.Dataset.from_tensor_slices(x).batch(4), verbose=0)
    assert out["clipwise_output"].shape == (12, CLASSES)

    config = tiny_config(str(shards / "train"), str(shards / "eval"))
    config.data.mixup = "none"
    config.eval.batch_size = 4  # 9 eval clips: a padded last batch with its mask
    train, evaluation = make_train_dataset(config), make_eval_dataset(config)
    history = model.fit(train, steps_per_epoch=3, epochs=1, validation_data=evaluation, verbose=0)
    assert {"mAP", "val_mAP", "val_mAUC"} <= set(history.history)
    logs = model.evaluate(evaluation, return_dict=True, verbose=0)
    scores, targets = [], []
    for b in evaluation:
        keep = b["mask"].numpy() > 0
        scores.append(model.predict(b["waveform"], verbose=0)["clipwise_output"][keep])
        targets.append(b["target"].numpy()[keep])
    want = evaluate_scores(np.concatenate(targets), np.concatenate(scores))
    assert len(np.concatenate(targets)) == 9
    assert logs["mAP"] == pytest.approx(want["mAP"], abs=1e-5)
    assert logs["mAUC"] == pytest.approx(want["mAUC"], abs=1e-5)
    out = model.predict(evaluation, verbose=0)
    assert out["clipwise_output"].shape == (9, CLASSES)  # the padding left out


def test_readme_the_keras_way_runs_as_written(tmp_path, monkeypatch):
    """README's "The Keras way" block, with a small stand-in for the cnn14 preset."""
    pytest.importorskip("tensorflow")
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = text[text.index("\n## The Keras way\n") :]
    section = section[: section.index("\n## ", 5)]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(block.strip().splitlines()) <= 14
    small_model().save_to_preset(tmp_path / "stand_in")
    code = block.replace('"cnn14"', repr(str(tmp_path / "stand_in"))).replace(
        "epochs=5", "epochs=2"
    )
    x, y = tones(16, seed=8)
    monkeypatch.chdir(tmp_path)
    namespace = {"waveforms": x, "multi_hot": y}
    exec(compile(code, "README.md", "exec"), namespace)
    model = namespace["model"]
    assert model.labels == ("dog", "cat", "bird") and namespace["scores"].shape == (16, 3)
    assert not model.weight_layers()["conv_block3_conv1"].trainable
    assert model.weight_layers()["conv_block4_conv1"].trainable
    assert (tmp_path / "my_tagger" / "metadata.json").is_file()
    assert (tmp_path / "my_tagger_savedmodel" / "saved_model.pb").is_file()


@pytest.mark.parametrize("task", ["multi_label", "single_label"])
def test_a_compiled_keras_file_reloads_compiled(tmp_path, task):
    import warnings

    x, y = tones(8, seed=9, single=task == "single_label")
    model = small_model()
    model.compile(task=task)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    want = model.evaluate(x, y, batch_size=4, return_dict=True, verbose=0)
    model.save(tmp_path / "m.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Keras warns when a custom compile() is not restored
        loaded = keras.saving.load_model(tmp_path / "m.keras")
    got = loaded.evaluate(x, y, batch_size=4, return_dict=True, verbose=0)
    assert set(got) == set(want)
    for k, v in want.items():
        assert got[k] == pytest.approx(v, abs=1e-5), k
