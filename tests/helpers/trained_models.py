"""Small models trained on the spoken digits the project ships (demo_data/fsdd), for the
tests that judge quantized exports on accuracy, not on agreement with flat scores.

:func:`digits_model` trains a narrow Cnn6 (8 kHz, 1 s, 32 mel bins, widths 16-128) on the
``train`` fold (280 clips of 4 speakers) for 300 steps: about 30 s on 2 cores, held-out
accuracy ~0.88 on the ``test`` fold (199 clips; chance 0.10). It is trained once per process
(``functools.cache``) and saved as a model folder, so a test can call the CLI on it.
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
FSDD = ROOT / "demo_data" / "fsdd"
SAMPLE_RATE = 8000
CLIP = 8000  # 1 s, as the demo recipe


@dataclasses.dataclass(frozen=True)
class Trained:
    model: object  # the AudioTagger
    model_dir: Path  # save_model_dir output
    data_dir: Path  # train.csv / test.csv (path,labels) and labels.csv
    test_x: np.ndarray  # (n, CLIP) held-out windows
    test_y: np.ndarray  # (n,) class index
    accuracy: float  # held-out top-1 of the Keras model


def _fsdd():
    from panns_keras.audio import fit_length, load_audio
    from panns_keras.data.formats import read_labels_csv
    from panns_keras.data.prepare.inputs import list_generic_csv

    listing = list_generic_csv(str(FSDD / "clips.csv"), str(FSDD / "labels.csv"))
    folds: dict[str, list] = {}
    for clip in listing.clips:
        folds.setdefault(clip.fold, []).append(clip)
    return read_labels_csv(FSDD / "labels.csv"), folds, fit_length, load_audio


@functools.cache
def digits_model(steps: int = 300, seed: int = 0) -> Trained:
    import keras
    import tensorflow as tf

    import panns_keras
    from panns_keras.data.formats import write_labels_csv
    from panns_keras.models.registry import get_spec
    from panns_keras.models.saving import save_model_dir

    labels, folds, fit_length, load_audio = _fsdd()
    x = {
        f: np.stack([fit_length(load_audio(c.source, SAMPLE_RATE), CLIP) for c in folds[f]])
        for f in ("train", "test")
    }
    y = {f: np.array([c.labels[0] for c in folds[f]]) for f in ("train", "test")}
    backbone = dataclasses.replace(get_spec("cnn6").backbone, widths=(16, 32, 64, 128))
    keras.utils.set_random_seed(seed)
    model = panns_keras.build_model(
        "cnn6",
        num_classes=10,
        seed=seed,
        sample_rate=SAMPLE_RATE,
        window_size=256,
        hop_size=160,
        mel_bins=32,
        fmax=4000.0,
        embedding_size=64,
        spec_augment=False,
        backbone=backbone,
        labels=labels,
    )
    opt = keras.optimizers.Adam(2e-3)
    variables = model.trainable_variables

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            p = model(xb, training=True)["clipwise_output"]
            loss = tf.reduce_mean(keras.losses.binary_crossentropy(yb, p))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    rng = np.random.default_rng(seed)
    onehot = np.eye(10, dtype=np.float32)[y["train"]]
    for _ in range(steps):
        idx = rng.choice(len(y["train"]), 32)
        step(x["train"][idx], onehot[idx])
    scores = np.asarray(model.predict(x["test"], batch_size=64, verbose=0)["clipwise_output"])
    accuracy = float(np.mean(scores.argmax(1) == y["test"]))
    root = Path(tempfile.mkdtemp(prefix="panns-keras-digits-"))
    model_dir = save_model_dir(model, root / "model", labels)
    data = root / "data"
    data.mkdir()
    write_labels_csv(data / "labels.csv", labels)
    for fold in ("train", "test"):
        rows = ["path,labels"] + [
            f"{c.source},{labels[c.labels[0]].display_name}" for c in folds[fold]
        ]
        (data / f"{fold}.csv").write_text("\n".join(rows) + "\n")
    return Trained(model, Path(model_dir), data, x["test"], y["test"], accuracy)
