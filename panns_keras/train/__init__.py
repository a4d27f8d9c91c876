"""Training: configs (`config.py`), the distributed trainer (`trainer.py`), evaluation."""
