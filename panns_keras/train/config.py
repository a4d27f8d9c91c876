"""The training config schema: every field that `configs/*.py` and `--config.x.y=...` may set.

`base_config()` returns the full tree with defaults; the files in `configs/` start from it and
change what their recipe needs. ml_collections rejects overrides of fields that do not exist,
so every field a user may set must be present here (optional ones as typed placeholders).
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from panns_keras.data.config import default_data_config

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")
LOSSES = ("bce_prob", "bce_logits")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
CHECKPOINT_INPUT = ("iterator", "reseed")
# in_model: inside the train step, in the model's own mixup domain (log-mel, waveform or
# Wavegram: spec.mixup_domain), as the reference; waveform: in tf.data; 'logmel' is the
# former name of in_model (still accepted).
MIXUP = ("in_model", "logmel", "waveform", "none")
TRANSFER_MODES = ("scratch", "finetune", "freeze_l1", "freeze_l3")


def model_overrides() -> ml_collections.ConfigDict:
    """Model spec overrides (None = the registry default); see `apply_overrides`."""
    o = ml_collections.ConfigDict()
    o.sample_rate = config_dict.placeholder(int)
    o.window_size = config_dict.placeholder(int)
    o.hop_size = config_dict.placeholder(int)
    o.mel_bins = config_dict.placeholder(int)
    o.fmin = config_dict.placeholder(float)
    o.fmax = config_dict.placeholder(float)
    o.embedding_size = config_dict.placeholder(int)
    o.spec_augment = config_dict.placeholder(bool)
    o.conv_dropout = config_dict.placeholder(float)
    return o


def base_config() -> ml_collections.ConfigDict:
    """All training fields with defaults (the reference AudioSet recipe values)."""
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.model = ml_collections.ConfigDict()
    c.model.name = "cnn14"
    c.model.overrides = model_overrides()
    c.model.disable_dropout = False  # set every Dropout rate to 0 (determinism tests)
    # Warm start (train/warm_start.py): an initial model (model directory, .keras or PANNs
    # .pth; '' = none, build model.name) and the transfer mode towards data.num_classes.
    c.model.init = ""
    c.model.mode = "scratch"  # scratch | finetune | freeze_l1 | freeze_l3
    c.model.base_lr_scale = 1.0  # finetune: the initial model's layers train at lr * this
    c.model.mlp_hidden = 512  # freeze_l3: width of the two hidden layers

    c.data = default_data_config()
    c.data.labels = ""  # index,mid,display_name CSV; '' = labels.csv beside the train shards
    # tfrecord: the tf.data pipeline over train_files | synthetic: one random batch of the
    # config's shapes made on the device (throughput measurements; no TensorFlow needed)
    c.data.source = "tfrecord"

    t = c.train = ml_collections.ConfigDict()
    t.batch_size = 32  # GLOBAL batch (clips after mixup), split over replicas
    t.num_steps = 600_000
    t.strategy = "auto"  # auto | default | mirrored | multi_worker
    t.precision = "float32"  # float32 | mixed_bfloat16 | mixed_float16 (dynamic loss scaling)
    t.jit_compile = False  # XLA for the forward/backward pass
    t.deterministic_ops = False  # tf.config.experimental.enable_op_determinism()
    t.sync_batchnorm = False  # batch statistics over the global batch (all replicas)
    # FusedBatchNormV3 for BatchNorm training steps (TF): faster on CPU, backward less precise
    # than the reference's (fails the Wavegram-Logmel training-trajectory check); off = exact.
    t.fused_batchnorm = False
    t.loss = "bce_prob"  # bce_prob (reference: BCE on sigmoid outputs) | bce_logits
    # Knowledge distillation from config.data.teacher (train/distill.py): loss =
    # (1 - weight) * BCE(labels) + weight * BCE(sigmoid(teacher_logits / temperature)).
    t.distill = ml_collections.ConfigDict()
    t.distill.weight = config_dict.placeholder(float)  # None: 0.9 with a teacher, else 0
    t.distill.temperature = 1.0

    t.optimizer = "adam"  # adam | adamw | sgd
    t.learning_rate = 1e-3
    t.amsgrad = True
    t.beta_1 = 0.9
    t.beta_2 = 0.999
    t.epsilon = 1e-8  # PyTorch's Adam default (Keras' is 1e-7)
    t.weight_decay = 0.0
    t.momentum = 0.9  # sgd only
    t.clipnorm = config_dict.placeholder(float)
    t.schedule = "constant"  # constant | cosine (to min_lr_ratio * lr at num_steps)
    t.warmup_steps = 0  # linear warm-up from 0
    t.min_lr_ratio = 0.0

    t.log_every = 100  # train loss / lr / throughput summaries
    t.checkpoint_every = 2000
    t.keep_checkpoints = 3  # newest N kept
    t.checkpoint_input = "iterator"  # iterator: exact data position | reseed: new seed on resume
    t.image_every = 2000  # log-mel image + audio of a training batch
    t.num_audio_samples = 3
    t.progress = True  # progress on stderr: a bar on a terminal, else a line every 30 s
    # Profiler trace of steps START..STOP (1-based, inclusive; "5,8" or "5"; '' = off) into
    # <workdir>/train/plugins/profile (TensorBoard's Profile tab): tf.profiler / jax.profiler.
    t.profile_steps = ""

    e = c.eval = ml_collections.ConfigDict()
    e.every = 2000
    e.batch_size = 0  # 0 = train.batch_size
    e.max_batches = 0  # 0 = the whole eval set
    e.keep_best = True  # export the best model by eval mAP to <workdir>/best
    e.num_best_worst = 10  # classes listed in the best/worst-AP text summary
    e.num_pr_curves = 10  # PR curves per evaluation: the classes with the most positives
    return c


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises UserError for values outside the allowed sets."""
    from panns_keras.errors import UserError

    checks = [
        ("train.precision", config.train.precision, PRECISIONS),
        ("train.optimizer", config.train.optimizer, OPTIMIZERS),
        ("train.schedule", config.train.schedule, SCHEDULES),
        ("train.loss", config.train.loss, LOSSES),
        ("train.strategy", config.train.strategy, STRATEGIES),
        ("train.checkpoint_input", config.train.checkpoint_input, CHECKPOINT_INPUT),
        ("data.mixup", config.data.mixup, MIXUP),
        ("model.mode", config.model.mode, TRANSFER_MODES),
    ]
    for name, value, allowed in checks:
        if value not in allowed:
            raise UserError(f"config.{name}: {value!r} is not one of {', '.join(allowed)}")
    if int(config.train.batch_size) < 1:
        raise UserError("config.train.batch_size: must be >= 1")
    source = str(config.data.get("source", "tfrecord"))
    if source not in ("tfrecord", "synthetic"):
        raise UserError(f"config.data.source: {source!r} is not one of tfrecord, synthetic")
    if source == "tfrecord" and not config.data.train_files:
        raise UserError(
            "config.data.train_files: empty (give a glob of TFRecord shards, or "
            "--config.data.source=synthetic to measure the step)"
        )
    if config.model.mode != "scratch" and not config.model.init:
        raise UserError(
            f"config.model.mode: {config.model.mode} needs config.model.init "
            "(a model directory, .keras or .pth file)"
        )
    if config.model.init:
        fixed = sorted(
            k
            for k, v in overrides_dict(config).items()
            if k not in ("spec_augment", "conv_dropout")
        )
        if fixed:
            raise UserError(
                f"config.model.overrides: {fixed} do not apply with "
                "config.model.init (the initial model fixes them)"
            )
    _validate_distill(config, source)
    if float(config.model.base_lr_scale) <= 0:
        raise UserError("config.model.base_lr_scale: must be > 0")
    from panns_keras.train.profiler import parse_profile_steps

    parse_profile_steps(config.train.get("profile_steps", ""))


def distill_settings(config) -> tuple[bool, float, float]:
    """``(distills, weight, temperature)``: a run distills when ``data.teacher`` is given, or
    on the synthetic source when ``train.distill.weight`` is set (random teacher logits, to
    measure the step)."""
    d = config.train.get("distill", None)
    weight = None if d is None else d.get("weight", None)
    temperature = 1.0 if d is None else float(d.get("temperature", 1.0))
    teacher = bool(config.data.get("teacher", ""))
    synthetic = str(config.data.get("source", "tfrecord")) == "synthetic"
    distills = teacher or (synthetic and weight is not None)
    if not distills:
        return False, 0.0, temperature
    return True, 0.9 if weight is None else float(weight), temperature


def _validate_distill(config, source: str) -> None:
    from panns_keras.errors import UserError

    d = config.train.get("distill", None)
    if d is None:
        return
    weight = d.get("weight", None)
    if weight is not None and not 0.0 <= float(weight) <= 1.0:
        raise UserError(f"config.train.distill.weight: {weight} is not in [0, 1]")
    if not float(d.get("temperature", 1.0)) > 0.0:
        raise UserError(f"config.train.distill.temperature: {d.temperature} must be > 0")
    if weight is not None and source != "synthetic" and not config.data.get("teacher", ""):
        raise UserError(
            "config.train.distill.weight: set, but config.data.teacher is empty "
            "(a folder written by `panns-keras teach`)"
        )


def overrides_dict(config: ml_collections.ConfigDict) -> dict:
    """The model overrides that are set (not None)."""
    return {k: v for k, v in config.model.overrides.items() if v is not None}
