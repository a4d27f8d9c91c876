"""What several test files share; import as ``from tests.helpers.golden import load_golden``.

- ``golden``: the reference outputs in tests/assets/golden, their loader and output check,
  the paper's trainable-parameter counts.
- ``narrow``: the registered models at 1/16 width (shape and wiring tests).
- ``small_models``: a small decision-level model for export and inference tests.
- ``train_data``: tiny class-tone TFRecords, the tiny training config, a fresh interpreter
  (``run_py``) and TensorBoard event readers.
- ``golden_train``: the reference training trajectories and their replay check.
- ``data_shards``: small shard sets for the input-pipeline tests.
- ``checkpoint_server``: a local HTTP server for the preset download tests.
- ``trained_models``: small models trained on the bundled spoken digits (quantized exports
  judged on accuracy).
- ``teacher_data``: a tiny teacher and its stored predictions (distillation tests).
- ``cli``: ``panns-keras`` run in-process through ``panns_keras.cli.main`` (the ``cli``
  fixture of tests/conftest.py).
"""
