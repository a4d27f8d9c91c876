"""The CPU demo: a small Cnn6 on 8 kHz spoken digits (FSDD subset in demo_data/), 10 classes.

`make demo` (examples/demo.py) fills in the data paths; by hand:
--config=demo --config.data.train_files=DIR/train-*.tfrecord ...
"""

from panns_keras.train.config import base_config


def get_config(arg=None):
    c = base_config()
    c.seed = 0
    c.model.name = arg or "cnn6"
    o = c.model.overrides
    o.sample_rate, o.window_size, o.fmax = 8000, 256, 4000.0
    o.mel_bins = 32
    o.hop_size = 160  # 50 frames/s: 1 s clips -> 51 frames
    # The reference SpecAugment drops 2 x 64-frame stripes: most of a 0.4 s digit at 51 frames.
    o.spec_augment = False
    o.embedding_size = 128
    c.data.sample_rate = 8000
    c.data.clip_samples = 8000  # 1 s
    c.data.num_classes = 10
    c.data.balanced = True
    c.data.shuffle_buffer = 256
    c.data.mixup = "in_model"
    c.data.mixup_alpha = 1.0
    c.train.batch_size = 32
    c.train.num_steps = 300
    c.train.learning_rate = 1e-3
    c.train.schedule = "cosine"
    c.train.warmup_steps = 20
    c.train.min_lr_ratio = 0.05
    c.train.log_every = 20
    c.train.checkpoint_every = 100
    c.train.image_every = 100
    c.eval.every = 100
    c.eval.batch_size = 64
    c.eval.num_best_worst = 3
    return c
