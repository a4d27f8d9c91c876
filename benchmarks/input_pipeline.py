"""Input pipeline throughput: raw TFRecord reading vs. the full training chain.

Writes synthetic 10-s 32-kHz clips (int16 in the project schema, grouped into class
shards with a manifest) to a temp dir, then measures clips/s for
  raw:  TFRecordDataset(all shards, parallel reads) -> repeat
  full: make_train_dataset (checked reads, class-balanced sampling, shuffle, parse,
        crop, multi-hot, batch, waveform mixup, prefetch)
and prints the full chain's rate per CPU core and the ratio full/raw.

usage: python benchmarks/input_pipeline.py [--clips 256] [--seconds 5] [--batch 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import tensorflow as tf

from panns_keras.data import config as config_lib
from panns_keras.data import formats, pipeline, schema

SR = 32000
CLIP = 10 * SR
NUM_CLASSES = 527


def write_data(directory: str, clips: int, groups: int) -> str:
    rng = np.random.default_rng(0)
    shards = []
    per = clips // groups
    for g in range(groups):
        fn = f"bench-{g:05d}-of-{groups:05d}.tfrecord"
        with tf.io.TFRecordWriter(os.path.join(directory, fn)) as w:
            for j in range(per):
                pcm = rng.integers(-8000, 8000, CLIP, dtype=np.int16)
                labels = [g, int(rng.integers(0, NUM_CLASSES))]
                w.write(schema.serialize_example(pcm, labels, f"c{g}_{j}", "", SR, CLIP))
        shards.append({"file": fn, "group": g, "num_clips": per})
    with open(formats.manifest_path(directory), "w") as f:
        json.dump({"shards": shards}, f)
    return os.path.join(directory, "*.tfrecord")


def rate(ds, seconds: float, clips_of) -> float:
    it = iter(ds)
    for _ in range(3):  # warm up (fills shuffle buffers, autotune)
        next(it)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += clips_of(next(it))
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=256)
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as d:
        pattern = write_data(d, args.clips, args.groups)
        files = sorted(tf.io.gfile.glob(pattern))
        raw = tf.data.TFRecordDataset(files, num_parallel_reads=tf.data.AUTOTUNE).repeat()
        raw = raw.batch(args.batch).prefetch(tf.data.AUTOTUNE)

        c = config_lib.default_config()
        c.data.train_files = pattern
        c.data.num_classes = NUM_CLASSES
        c.data.shuffle_buffer = 128
        c.data.mixup = "waveform"
        c.train.batch_size = args.batch
        full = pipeline.make_train_dataset(c)
        # Alternate the two measurements and take medians (shared machines are noisy).
        raws, fulls = [], []
        for _ in range(args.repeats):
            raws.append(rate(raw, args.seconds, lambda b: int(b.shape[0])))
            # each output row is a mix of two input clips; count the clips read
            fulls.append(rate(full, args.seconds, lambda b: 2 * int(b["waveform"].shape[0])))
        raw_rate, full_rate = float(np.median(raws)), float(np.median(fulls))

    print(f"clips: {args.clips} x 10 s @ 32 kHz int16, batch {args.batch}, {cores} CPU cores")
    print(f"raw TFRecord read : {raw_rate:8.1f} clips/s (median of {[round(r) for r in raws]})")
    print(f"full train chain  : {full_rate:8.1f} clips/s (median of {[round(r) for r in fulls]})")
    print("  (full chain counts input clips; waveform mixup halves the rows)")
    print(f"full chain / core : {full_rate / cores:8.1f} clips/s/core")
    print(f"full / raw        : {100.0 * full_rate / raw_rate:8.1f} % (target >= 70 %)")


if __name__ == "__main__":
    main()
