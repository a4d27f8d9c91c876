"""The PANNs reference AudioSet recipe (full training set, 600k steps).

Usage: --config=audioset:cnn14 (the argument is the model name) and e.g.
--config.data.train_files='data/train/*.tfrecord' --config.data.eval_files='data/eval/*.tfrecord'.
"""

from panns_keras.train.config import base_config


def get_config(arg=None):
    c = base_config()
    c.model.name = arg or "cnn14"
    # Reference: Adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=True),
    # batch 32, BCE on clipwise probabilities, balanced sampling, log-mel mixup (alpha 1),
    # evaluation every 2000 iterations, 600k iterations, 32 kHz 10 s clips.
    c.train.batch_size = 32
    c.train.num_steps = 600_000
    c.train.optimizer = "adam"
    c.train.learning_rate = 1e-3
    c.train.amsgrad = True
    c.train.loss = "bce_prob"
    c.data.sample_rate = 32000
    c.data.clip_samples = 320000
    c.data.num_classes = 527
    c.data.balanced = True
    c.data.mixup = "in_model"
    c.data.mixup_alpha = 1.0
    c.eval.every = 2000
    c.train.checkpoint_every = 2000
    c.train.log_every = 100
    # The shuffle buffer of raw 10 s clips makes an iterator checkpoint ~0.6 GB: reseed instead.
    c.train.checkpoint_input = "reseed"
    return c
