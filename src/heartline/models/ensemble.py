"""Cross-fitted ensemble of hybrid CNN-LSTMs with calibrated decision offsets.

Training (:class:`heartline.training.crossfit.CrossFitHybridClassifier.fit`; this module holds
the network only and never imports :mod:`heartline.training`):

1. The training and validation beats (all of DS1 in the inter-patient protocol; never DS2) are
   pooled and their records (patients) dealt into ``n_members`` folds with the SVEB, VEB and
   fusion beats spread evenly (:func:`heartline.data.splits.stratified_record_folds`).
2. Member ``k`` is a :class:`~heartline.models.hybrid.HybridNet` trained on the other folds and
   early-stopped on fold ``k`` (its patients are unseen by that member).
3. Each fold's beats are predicted by the member that did not train on them: out-of-fold
   log-probabilities for every pooled beat, i.e. predictions for *new patients*, the situation
   the model meets in DS2 and in the clinic.
4. Per-class decision offsets are fitted on those out-of-fold predictions
   (:func:`heartline.training.calibration.fit_decision_bias`).

Inference (:class:`HybridEnsemble`): the mean of the members' log-probabilities plus the
offsets, a single network, so PyTorch, the ONNX export, the edge runtime and the live pipeline
all apply the same offsets without knowing about them.

This is cross-fitting / stacking (Wolpert 1992) applied to threshold moving, with the
bagging-style averaging of Collell et al. (2016).

References
----------
Wolpert DH. Stacked generalization. Neural Networks 5(2):241-259 (1992).
Collell G, Prelec D, Patil K. Reviving threshold-moving: a simple plug-in bagging ensemble for
binary and multiclass imbalanced data. arXiv:1606.08698 (2016).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from heartline.models.deep import N_CLASSES, BeatNet, NetOutput
from heartline.models.hybrid import HybridNet

__all__ = ["HybridEnsemble"]

logger = logging.getLogger(__name__)


class HybridEnsemble(BeatNet):
    """Mean log-probabilities of ``n_members`` hybrid networks plus per-class offsets.

    Parameters
    ----------
    n_leads, window_len, n_rr, n_classes, dropout
        As for :class:`~heartline.models.hybrid.HybridNet`.
    n_members : int
        Number of member networks (= cross-fitting folds).
    calibrate : bool
        Whether :class:`~heartline.training.crossfit.CrossFitHybridClassifier` fits :attr:`decision_bias` (else it stays 0).
    **hybrid
        Architecture parameters of every member (see :class:`~heartline.models.hybrid.HybridNet`).

    Notes
    -----
    The output "logits" are ``mean_k log_softmax(member_k) + decision_bias``; their softmax is a
    proper distribution whose argmax is the calibrated decision.
    """

    def __init__(
        self,
        *,
        n_leads: int,
        window_len: int,
        n_rr: int,
        n_classes: int = N_CLASSES,
        dropout: float = 0.3,
        n_members: int = 3,
        calibrate: bool = True,
        **hybrid: Any,
    ) -> None:
        super().__init__(n_leads=n_leads, window_len=window_len, n_rr=n_rr, n_classes=n_classes)
        if n_members < 1:
            raise ValueError(f"n_members must be >= 1, got {n_members}")
        self.n_members = n_members
        self.calibrate = calibrate
        self.members = nn.ModuleList(
            HybridNet(
                n_leads=n_leads,
                window_len=window_len,
                n_rr=n_rr,
                n_classes=n_classes,
                dropout=dropout,
                **hybrid,
            )
            for _ in range(n_members)
        )
        first = self.members[0]
        assert isinstance(first, HybridNet)
        self.context_k = first.context_k
        self.has_next_head = first.has_next_head
        self.register_buffer("decision_bias", torch.zeros(n_classes))

    def _combine(self, outs: list[NetOutput]) -> NetOutput:
        bias: Tensor = self.decision_bias  # type: ignore[assignment]
        logits = torch.stack([torch.log_softmax(o.logits, dim=1) for o in outs]).mean(0) + bias
        nxt = None
        if self.has_next_head:
            nxt = torch.stack(
                [torch.log_softmax(o.next_logits, dim=1) for o in outs if o.next_logits is not None]
            ).mean(0)
        return NetOutput(logits, None, nxt)

    def forward_context(self, windows: Tensor, rr: Tensor, ctx: Tensor) -> NetOutput:
        return self._combine([m.forward_context(windows, rr, ctx) for m in self.members])

    def forward_sequence(self, windows: Tensor, rr: Tensor) -> NetOutput:
        return self._combine([m.forward_sequence(windows, rr) for m in self.members])

    def set_decision_bias(self, bias: np.ndarray) -> None:
        """Replace the per-class offsets (length ``n_classes``)."""
        b = torch.as_tensor(np.asarray(bias, dtype=np.float32))
        if b.shape != (self.n_classes,):
            raise ValueError(f"bias must have shape ({self.n_classes},), got {tuple(b.shape)}")
        self.decision_bias.copy_(b)  # type: ignore[operator]
