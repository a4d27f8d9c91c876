"""Writes small shard sets with the project schema (used by the pipeline tests)."""

import json
import os

import numpy as np
import tensorflow as tf

from panns_keras.data import schema


def write_shards(directory, groups, clip_samples=64, seed=0, name="train"):
    """groups: list of (group_id, [labels per clip]) -> one shard per group + manifest."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    shards = []
    total = len(groups)
    for k, (g, clip_labels) in enumerate(groups):
        fn = f"{name}-{k:05d}-of-{total:05d}.tfrecord"
        with tf.io.TFRecordWriter(os.path.join(directory, fn)) as w:
            for j, labels in enumerate(clip_labels):
                wav = rng.uniform(-0.5, 0.5, clip_samples).astype(np.float32)
                w.write(
                    schema.serialize_example(
                        wav, labels, f"g{g}_s{k}_c{j}", "", 32000, clip_samples
                    )
                )
        shards.append({"file": fn, "group": g, "num_clips": len(clip_labels)})
    with open(os.path.join(directory, "manifest.json"), "w") as f:
        json.dump({"shards": shards}, f)
    return [os.path.join(directory, s["file"]) for s in shards]
