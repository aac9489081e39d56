"""Training, evaluation and model selection of the beat classifiers (needs ``heartline[train]``).

:mod:`~heartline.training.registry` (``get_model``) builds trainable classifiers: the networks
of :mod:`heartline.models` wrapped by :mod:`~heartline.training.deep` /
:mod:`~heartline.training.crossfit`, and the classical baselines of
:mod:`~heartline.training.classical`. :mod:`~heartline.training.trainer` holds the training loop,
:mod:`~heartline.training.config` the typed (pydantic) experiment configs and
:mod:`~heartline.training.ship` the command that ships a trained model.
"""
