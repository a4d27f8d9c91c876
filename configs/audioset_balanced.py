"""PANNs recipe on the balanced AudioSet subset (~20k clips): same model/optimizer, fewer steps.

Usage: --config=audioset_balanced:cnn14
"""

from panns_keras.train.config import base_config


def get_config(arg=None):
    c = base_config()
    c.model.name = arg or "cnn14"
    c.train.batch_size = 32
    c.train.num_steps = 60_000  # ~100 epochs of the balanced subset at batch 32
    c.train.optimizer = "adam"
    c.train.learning_rate = 1e-3
    c.train.amsgrad = True
    c.data.sample_rate = 32000
    c.data.clip_samples = 320000
    c.data.num_classes = 527
    c.data.balanced = True  # the subset is near-balanced; balancing still evens rare classes
    c.data.mixup = "in_model"
    c.data.mixup_alpha = 1.0
    c.eval.every = 2000
    c.train.checkpoint_every = 2000
    c.train.checkpoint_input = "iterator"  # small shuffle buffer below: cheap to checkpoint
    c.data.shuffle_buffer = 200
    return c
