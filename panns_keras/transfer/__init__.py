"""Transfer learning: PANNs bases on new datasets (scratch / finetune / freeze_l1 /
freeze_l3 / cached-embedding probe), with folds."""

from panns_keras.transfer.data import ClipSet, load_clips, make_splits
from panns_keras.transfer.model import (
    MODES,
    TransferMLP,
    TransferModel,
    build_transfer_model,
    copy_base_weights,
)
from panns_keras.transfer.train import TrainOptions, embeddings, finetune, train_probe

__all__ = ["MODES", "ClipSet", "TrainOptions", "TransferMLP", "TransferModel",
           "build_transfer_model", "copy_base_weights", "embeddings", "finetune",
           "load_clips", "make_splits", "train_probe"]  # fmt: skip
