"""Beat networks (the hybrid CNN-LSTM, its ensemble, the deep baselines) and their registry.

This package holds PyTorch networks only and never imports :mod:`heartline.training`: their
training loops, the trainable classifier wrappers, the classical baselines and the registry of
trainable models (``get_model``) live in :mod:`heartline.training` (checked by the import
contracts in ``pyproject.toml``).
"""
