"""Transfer learning from a pretrained PANNs model (the one trainer, warm start).

    panns-keras train --config=finetune:freeze_l1 \
        --config.model.init=Cnn14_mAP=0.431.pth --config.data.train_files=... --out=...

or k-fold cross-validation over prepared shards with ``panns_keras.train.finetune``. The
variant (after ':') is the transfer mode: finetune (default), freeze_l1, freeze_l3, scratch.
The data fields (files, classes, rate, clip length) come from the prepared data set.
"""

from panns_keras.train.config import base_config


def get_config(arg=None):
    c = base_config()
    c.seed = 0
    c.model.init = ""  # required: model directory, .keras or PANNs .pth
    c.model.mode = arg or "finetune"
    c.model.base_lr_scale = 0.1  # finetune: pretrained layers at a tenth of the head's rate
    c.model.mlp_hidden = 512
    c.data.balanced = True
    c.data.shuffle_buffer = 512
    c.data.mixup = "in_model"
    c.data.mixup_alpha = 0.2  # milder than pretraining's 1.0 on small data sets
    c.train.batch_size = 16
    c.train.num_steps = 1000
    c.train.learning_rate = 1e-3
    c.train.schedule = "cosine"
    c.train.warmup_steps = 50
    c.train.min_lr_ratio = 0.05
    c.train.log_every = 50
    c.train.checkpoint_every = 200
    c.train.image_every = 0
    c.eval.every = 0
    c.eval.keep_best = False
    return c
