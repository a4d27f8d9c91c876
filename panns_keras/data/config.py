"""Default data configuration (embedded by the training config as `config.data`)."""

from __future__ import annotations

import ml_collections


def default_data_config() -> ml_collections.ConfigDict:
    """Returns the `config.data` block with defaults.

    Fields:
      train_files: glob pattern (str) or list of patterns/paths of training shards.
      eval_files: same, for evaluation shards.
      manifest_dir: folder with manifest.json ('' = the folder of the first train shard).
      sample_rate: sample rate of the stored audio (Hz).
      clip_samples: samples per example (crop or pad to this).
      num_classes: width of the multi-hot target.
      balanced: class-balanced sampling (reference-style) vs. raw frequencies.
      shuffle_buffer: examples in the shuffle buffer.
      skip_corrupt: skip corrupted records/shards (counted) instead of raising.
      mixup: 'in_model' (the model mixes pairs in its own domain), 'waveform' (the
        training step mixes the waveforms) or 'none'; with mixup the pipeline yields 2x batch.
      mixup_alpha: Beta(alpha, alpha) parameter.
      deterministic: deterministic element order given `config.seed`.
      random_crop: crop longer clips at a random offset (else from the start).
      num_parallel_reads: files read in parallel (-1 = AUTOTUNE).
      cycle_length: interleave cycle length per class group.
      eval_folds: comma list of held-out folds (`formats`: the fold of each clip): eval reads
        only these, train never reads them ('' = eval reads every fold).
      train_folds: comma list of folds train reads ('' = every fold not in eval_folds).
      teacher: folder of teacher predictions written by `panns-keras teach` over the train
        shards ('' = none): each batch then carries `teacher_logits` and the step distills
        (config.train.distill).
    """
    c = ml_collections.ConfigDict()
    c.train_files = ""
    c.eval_files = ""
    c.manifest_dir = ""
    c.sample_rate = 32000
    c.clip_samples = 320000
    c.num_classes = 527
    c.balanced = True
    c.shuffle_buffer = 1000
    c.skip_corrupt = False
    c.mixup = "in_model"  # in the model's mixup domain | waveform (before the model) | none
    c.mixup_alpha = 1.0
    c.deterministic = True
    c.random_crop = True
    c.num_parallel_reads = -1
    c.cycle_length = 4
    c.eval_folds = ""
    c.train_folds = ""
    c.teacher = ""
    return c


def default_config() -> ml_collections.ConfigDict:
    """A minimal full config (`data`, `train.batch_size`, `seed`) for tests and tools."""
    c = ml_collections.ConfigDict()
    c.data = default_data_config()
    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 32
    c.seed = 0
    return c
