"""Tiny TFRecord data, tiny configs, a fresh interpreter and event readers for the training
tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE_RATE = 8000
CLIP = 4000  # 0.5 s
NUM_CLASSES = 3
HPARAMS_TAG = "_hparams_/session_start_info"  # the hparams plugin's own tag


def write_data(
    directory,
    clips_per_class=8,
    name="train",
    seed=0,
    shards_per_class=1,
    identical=False,
    sample_rate=SAMPLE_RATE,
    clip=CLIP,
):
    """Class-dependent tones + noise, one shard group per class, manifest + labels.csv.

    identical: every clip is the same waveform with label 0 (for sharding-independent runs).
    """
    SAMPLE_RATE, CLIP = sample_rate, clip  # the module defaults, overridden per call
    import tensorflow as tf

    from panns_keras.data import schema

    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    t = np.arange(CLIP) / SAMPLE_RATE
    shards, files = [], []
    total = NUM_CLASSES * shards_per_class
    k = 0
    for c in range(NUM_CLASSES):
        for s in range(shards_per_class):
            fn = f"{name}-{k:05d}-of-{total:05d}.tfrecord"
            with tf.io.TFRecordWriter(os.path.join(directory, fn)) as w:
                for j in range(clips_per_class):
                    f0 = 300.0 * (c + 1) * (1 + 0.05 * rng.standard_normal())
                    wav = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.05 * rng.standard_normal(CLIP)
                    if identical:
                        wav = 0.3 * np.sin(2 * np.pi * 440.0 * t)
                    w.write(
                        schema.serialize_example(
                            wav.astype(np.float32),
                            [0 if identical else c],
                            f"{name}_c{c}_s{s}_{j}",
                            "",
                            SAMPLE_RATE,
                            CLIP,
                        )
                    )
            shards.append({"file": fn, "group": c, "num_clips": clips_per_class})
            files.append(os.path.join(directory, fn))
            k += 1
    with open(os.path.join(directory, "manifest.json"), "w") as f:
        json.dump({"shards": shards}, f)
    with open(os.path.join(directory, "labels.csv"), "w") as f:
        f.write("index,mid,display_name\n")
        for c in range(NUM_CLASSES):
            f.write(f"{c},/m/tone{c},tone {c}\n")
    return files


def tiny_config(data_dir, eval_dir=None, **train):
    """A tiny cnn6 on 8 kHz half-second clips, deterministic and dropout-free."""
    from panns_keras.train.config import base_config

    c = base_config()
    c.model.name = "cnn6"
    o = c.model.overrides
    o.sample_rate, o.window_size, o.hop_size, o.fmax, o.mel_bins = 8000, 256, 80, 4000.0, 32
    o.embedding_size = 32
    o.spec_augment = False
    c.model.disable_dropout = True
    c.data.train_files = os.path.join(data_dir, "*.tfrecord")
    c.data.eval_files = os.path.join(eval_dir, "*.tfrecord") if eval_dir else ""
    c.data.sample_rate = SAMPLE_RATE
    c.data.clip_samples = CLIP
    c.data.num_classes = NUM_CLASSES
    c.data.shuffle_buffer = 16
    c.data.random_crop = False
    c.train.batch_size = 4
    c.train.num_steps = 2
    c.train.log_every = 1
    c.train.checkpoint_every = 100
    c.train.image_every = 0
    c.train.deterministic_ops = True
    c.eval.every = 0
    for k, v in train.items():
        c.train[k] = v
    return c


def run_py(code: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """Runs python ``code`` in a fresh interpreter (the repository on its path, so the code can
    ``from tests.helpers.train_data import tiny_config``); returns the finished process."""
    full_env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    full_env.update(env or {})
    command = [sys.executable, "-c", code]
    return subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=timeout)


def read_events(logdir) -> dict[str, dict[str, dict]]:
    """{run (folder relative to logdir, '.' itself): {tag: {'plugin', 'steps': {step: value}}}}
    with value a float (scalars) or the numpy tensor."""
    import glob

    import tensorflow as tf

    runs: dict[str, dict[str, dict]] = {}
    for f in glob.glob(os.path.join(str(logdir), "**", "events.out.tfevents.*"), recursive=True):
        run = os.path.relpath(os.path.dirname(f), str(logdir))
        tags = runs.setdefault(run, {})
        for ev in tf.compat.v1.train.summary_iterator(f):
            for v in ev.summary.value:
                entry = tags.setdefault(v.tag, {"plugin": "", "content": b"", "steps": {}})
                if v.metadata.plugin_data.plugin_name:  # on a tag's first event only
                    entry["plugin"] = v.metadata.plugin_data.plugin_name
                    entry["content"] = v.metadata.plugin_data.content
                value = tf.make_ndarray(v.tensor) if v.HasField("tensor") else v.simple_value
                entry["steps"][int(ev.step)] = value
    return runs


def read_hparams(logdir) -> dict:
    """The hparams (name -> value) of the run in ``logdir`` itself."""
    from tensorboard.plugins.hparams import metadata

    content = read_events(logdir)["."][HPARAMS_TAG]["content"]
    info = metadata.parse_session_start_info_plugin_data(content)
    return {k: getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}
