"""panns-keras evaluate --model=DIR --data='eval/*.tfrecord' --out=DIR

--model: a model directory (convert / train output), a training workdir (newest checkpoint) or
a checkpoint prefix (WORKDIR/checkpoints/ckpt-N). Prints mAP, mean AUC, d-prime (and top-1
accuracy) and writes metrics.json, per_class.csv and per_class_ap.png into --out. Classes with
no positive clip in the data are reported and excluded from the means.
TensorBoard: the training run's eval summaries (loss, mAP, mean_AUC, d_prime, accuracy,
classes_by_AP, per_class_AP, PR curves) go to --out/eval at the model's training step
(tensorboard --logdir OUT; or --out=WORKDIR to add them to the training run's eval).
"""

from __future__ import annotations

import os

from absl import flags

from panns_keras.errors import UsageError

_MODEL = flags.DEFINE_string(
    "model",
    None,
    "Model directory, training workdir, checkpoint or preset name (panns-keras models).",
)
_DATA = flags.DEFINE_string("data", None, "Glob of evaluation TFRecord shards (prepare).")
_OUT = flags.DEFINE_string("out", None, "Output folder for the report.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Evaluation batch size.", lower_bound=1)
_MAX_BATCHES = flags.DEFINE_integer(
    "max_batches", 0, "Stop after N batches (0 = all).", lower_bound=0
)


def main(argv, verb="evaluate"):
    if len(argv) > 1:
        raise UsageError(f"{argv[1]}: unexpected argument (give flags only)")
    for name, holder in (("model", _MODEL), ("data", _DATA), ("out", _OUT)):
        if not holder.value:
            raise UsageError(f"--{name}: required")
    from panns_keras.data.pipeline import make_eval_dataset
    from panns_keras.progress import Progress
    from panns_keras.train import evaluation
    from panns_keras.train.config import base_config
    from panns_keras.train.restore import eval_data_config, load_for_eval, trained_step
    from panns_keras.train.summaries import Summaries

    model, names = load_for_eval(_MODEL.value)
    config = eval_data_config(_DATA.value, model, _BATCH.value)
    with Progress(None, "evaluate", unit="clips") as progress:
        result = evaluation.evaluate(
            evaluation.make_predict_fn(model),
            make_eval_dataset(config),
            _MAX_BATCHES.value,
            progress,
        )
    paths = evaluation.write_report(result, names, _OUT.value)
    e = base_config().eval
    summaries = Summaries(
        _OUT.value, num_pr_curves=e.num_pr_curves, num_best_worst=e.num_best_worst
    )
    summaries.evaluation(trained_step(_MODEL.value), result, names)
    summaries.close()
    from panns_keras.metrics import nan_reason

    why = nan_reason(result)
    print(evaluation.summary_line(result) + (f"  ({why})" if why else ""))
    excluded = result["excluded_classes"]
    if excluded:
        shown = ", ".join(names[i] for i in excluded[:10])
        more = f" and {len(excluded) - 10} more" if len(excluded) > 10 else ""
        print(f"excluded (no positives or no negatives): {shown}{more}")
    print(
        f"wrote {paths['metrics']}, {paths['csv']}, {paths['plot']}, "
        f"TensorBoard events in {os.path.join(_OUT.value, 'eval')}"
    )
    return 0
