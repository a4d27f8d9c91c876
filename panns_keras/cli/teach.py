"""panns-keras teach --model=MODEL[,MODEL...] --data=SHARDS --out=DIR [--batch_size=32]

Teacher predictions for knowledge distillation (panns_keras.train.distill): runs one
teacher, or several whose clip logits are averaged, over the shards written by
`panns-keras prepare` (--data: their folder or a glob) and stores the logits as float16, one
`<shard>.logits` file per shard keyed by clip id, with teacher.json naming the models and a
hash of their weights. A re-run keeps the shards already done (same shard, same teachers)
and writes the rest. Then train a student with --config.data.teacher=DIR (`train`) or
--teacher=DIR (`finetune`); the loss is (1 - w) * BCE(labels) + w * BCE(sigmoid(teacher
logits / T)), w = config.train.distill.weight (0.9), T = config.train.distill.temperature (1).
"""

from __future__ import annotations

from absl import flags

from panns_keras.errors import UsageError

_MODEL = flags.DEFINE_list(
    "model",
    None,
    "Teacher model(s), comma-separated: preset name, "
    "model directory, .keras or PANNs .pth file; several: the mean of "
    "their logits.",
)
_DATA = flags.DEFINE_string(
    "data",
    None,
    "Prepared shards: a folder written by `panns-keras "
    "prepare`, or a glob of its *.tfrecord files.",
)
_OUT = flags.DEFINE_string("out", None, "Output folder of the predictions (a rerun resumes).")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Clips per teacher call.", lower_bound=1)


def main(argv, verb="teach"):
    if len(argv) > 1:
        raise UsageError(f"{argv[1]}: unexpected argument (give flags only)")
    for name, holder in (("model", _MODEL), ("data", _DATA), ("out", _OUT)):
        if not holder.value:
            raise UsageError(f"--{name}: required")
    from panns_keras.train.distill import teach

    meta = teach(_MODEL.value, _DATA.value, _OUT.value, batch_size=_BATCH.value)
    clips = sum(int(e["num_clips"]) for e in meta["shards"])
    models = ", ".join(m["name"] for m in meta["models"])
    print(
        f"teacher logits of {models} for {clips} clips in {len(meta['shards'])} shard(s) "
        f"({meta['written']} written, {meta['kept']} kept) -> {_OUT.value}"
    )
    return 0
