"""Fine-tuning streams from TFRecords: peak memory as the data set grows.

For each shard count S, writes S shards of synthetic 1 s clips at 8 kHz (256 clips each,
two folds) and runs ``panns_keras.train.finetune`` (a small Cnn6 init, freeze_l1, fixed
steps, then evaluation over the held-out fold, which grows with S) in a fresh process;
prints the process's peak RSS and the data set's size. Flat RSS as S grows means neither
training nor evaluation holds the data set in memory.

    python benchmarks/finetune_stream.py [--shards 2,8,32] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
SR, CLIP, K, PER_SHARD = 8000, 8000, 4, 256


def write_data(directory: str, shards: int) -> int:
    import numpy as np
    import tensorflow as tf

    from panns_keras.data import formats, schema

    rng = np.random.default_rng(0)
    t = np.arange(CLIP) / SR
    entries, size = [], 0
    for s in range(shards):
        fold, c = str(s % 2), (s // 2) % K
        fn = formats.shard_filename("train", s, shards)
        with tf.io.TFRecordWriter(os.path.join(directory, fn)) as w:
            for j in range(PER_SHARD):
                wav = 0.3 * np.sin(2 * np.pi * 300.0 * (c + 1) * t)
                wav = (wav + 0.05 * rng.standard_normal(CLIP)).astype(np.float32)
                w.write(schema.serialize_example(wav, [c], f"s{s}_{j}", "", SR, CLIP, fold=fold))
        size += os.path.getsize(os.path.join(directory, fn))
        entries.append({"file": fn, "group": c, "num_clips": PER_SHARD, "fold": fold})
    manifest = {
        "version": 2,
        "sample_rate": SR,
        "clip_samples": CLIP,
        "num_classes": K,
        "shards": entries,
    }
    with open(os.path.join(directory, formats.MANIFEST_NAME), "w") as f:
        json.dump(manifest, f)
    formats.write_labels_csv(
        os.path.join(directory, formats.LABELS_NAME),
        [formats.Label(i, f"/m/{i}", f"c{i}") for i in range(K)],
    )
    return size


def run_one(shards: int, steps: int) -> dict:
    import panns_keras
    from panns_keras.data import formats
    from panns_keras.models.saving import save_model_dir
    from panns_keras.train.config import base_config
    from panns_keras.train.finetune import finetune

    with tempfile.TemporaryDirectory() as tmp:
        size = write_data(tmp, shards)
        rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        init = panns_keras.build_model(
            "cnn6",
            num_classes=K,
            seed=0,
            sample_rate=SR,
            window_size=256,
            hop_size=80,
            fmax=4000.0,
            mel_bins=32,
            embedding_size=64,
        )
        labels = [formats.Label(i, f"/m/{i}", f"c{i}") for i in range(K)]
        save_model_dir(init, tmp + "/init", labels)
        c = base_config()
        c.model.init, c.model.mode = tmp + "/init", "freeze_l1"
        c.train.batch_size, c.train.num_steps, c.train.image_every = 16, steps, 0
        c.train.checkpoint_every, c.train.log_every = steps, steps
        c.data.shuffle_buffer, c.data.mixup = 256, "none"
        res = finetune(tmp, tmp + "/work", c, folds="1")
    return {
        "shards": shards,
        "clips": shards * PER_SHARD,
        "data_mib": size / 2**20,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_after_writing_mib": rss_data / 1024,
        "held_out_clips_evaluated": res["splits"][0].get("accuracy") is not None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shards", default="2,8,32")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.steps)))
        return
    print(f"{'shards':>7}{'clips':>8}{'data MiB':>10}{'peak RSS MiB':>14}")
    for s in (int(v) for v in args.shards.split(",")):
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(s), "--steps", str(args.steps)],
            capture_output=True,
            text=True,
        )
        if out.returncode:
            print(f"{s}: failed\n{out.stderr[-2000:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['shards']:>7}{r['clips']:>8}{r['data_mib']:>10.1f}{r['peak_rss_mib']:>14.0f}")


if __name__ == "__main__":
    main()
