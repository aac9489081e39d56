"""Training of the cross-fitted hybrid ensemble (:class:`~heartline.models.ensemble.HybridEnsemble`).

:class:`CrossFitHybridClassifier` pools the training and validation beats, trains one member per
stratified record fold with early stopping on its held-out fold, and fits the per-class decision
offsets on the out-of-fold predictions (the procedure is described in
:mod:`heartline.models.ensemble`, which holds the network).

References
----------
Wolpert DH. Stacked generalization. Neural Networks 5(2):241-259 (1992).
Collell G, Prelec D, Patil K. Reviving threshold-moving: a simple plug-in bagging ensemble for
binary and multiclass imbalanced data. arXiv:1606.08698 (2016).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from heartline.data.beat_set import BeatSet, concat_beat_sets
from heartline.data.splits import stratified_record_folds
from heartline.models.deep import BeatNet
from heartline.models.ensemble import HybridEnsemble
from heartline.models.hybrid import HybridNet
from heartline.training.calibration import fit_decision_bias
from heartline.training.deep import TorchBeatClassifier
from heartline.training.trainer import per_class_rates, predict_logits, train_net

__all__ = ["CrossFitHybridClassifier", "CrossFitResult"]

logger = logging.getLogger(__name__)


def _class_counts(beats: BeatSet) -> dict[str, tuple[int, ...]]:
    """Record -> (SVEB, VEB, F, all labelled) beat counts, for stratified folds."""
    out = {}
    for rec in beats.records:
        y = beats.labels[beats.record == rec]
        out[rec] = (
            int(np.count_nonzero(y == 1)),
            int(np.count_nonzero(y == 2)),
            int(np.count_nonzero(y == 3)),
            int(np.count_nonzero(y >= 0)),
        )
    return out


@dataclasses.dataclass(frozen=True)
class CrossFitResult:
    """What :meth:`CrossFitHybridClassifier.fit` did (``history`` is member 0's, for plots)."""

    folds: tuple[tuple[str, ...], ...]
    members: tuple[Any, ...]
    calibration: Any
    oof_macro_f1_before: float
    oof_macro_f1_after: float
    train_seconds: float
    n_params: int

    @property
    def history(self) -> tuple[Any, ...]:
        return self.members[0].history if self.members else ()

    @property
    def best_epoch(self) -> int:
        return int(self.members[0].best_epoch) if self.members else 0

    @property
    def stop_reason(self) -> str:
        return ",".join(m.stop_reason for m in self.members)

    def history_dicts(self) -> list[dict[str, float]]:
        return self.members[0].history_dicts() if self.members else []


def _per_class(log_proba: np.ndarray, labels: np.ndarray, bias: np.ndarray) -> dict[str, Any]:
    """Out-of-fold sensitivity / positive predictivity per class, before and after the offsets."""
    classes = tuple("NSVFQ"[: log_proba.shape[1]])
    return {
        tag: per_class_rates(labels, (log_proba + b).argmax(axis=1), classes)
        for tag, b in (("before", np.zeros_like(bias)), ("after", bias))
    }


class CrossFitHybridClassifier(TorchBeatClassifier):
    """:class:`~heartline.models.base.BeatClassifier` training a :class:`HybridEnsemble` by cross-fitting.

    ``fit(train, val)`` pools ``train`` and ``val`` (other patients of the training set), trains
    one member per stratified record fold with early stopping on its held-out fold, and fits the
    decision offsets on the out-of-fold predictions (see the module docstring). The training
    config's ``time_budget_s`` is shared by the members; member ``k`` uses seed ``seed + k``.
    """

    def fit(
        self,
        train: BeatSet,
        val: BeatSet,
        *,
        run_dir: Path | None = None,
        seed: int = 0,
        progress: bool = False,
    ) -> None:
        pool = concat_beat_sets([train, val]) if len(val) else train
        torch.manual_seed(seed)  # nothing of the network may depend on what ran before
        self.build(n_leads=pool.n_leads, window_len=pool.window_len, n_rr=pool.rr.shape[1])
        net = self.net
        assert isinstance(net, HybridEnsemble)
        n_members = net.n_members
        if n_members < 2:
            raise ValueError("cross-fitting needs n_members >= 2 (one held-out fold per member)")
        folds = stratified_record_folds(_class_counts(pool), n_folds=n_members)
        cfg = self.train_config
        budget = None if cfg.time_budget_s is None else cfg.time_budget_s / n_members
        oof = np.zeros((len(pool), net.n_classes), dtype=np.float32)
        results = []
        t0 = time.perf_counter()
        for k, held in enumerate(folds):
            held_mask = np.isin(pool.record, list(held))
            tr, va = pool.subset(~held_mask), pool.subset(held_mask)
            member = net.members[k]
            assert isinstance(member, BeatNet)
            member_cfg = dataclasses.replace(cfg, seed=seed + k, time_budget_s=budget)
            torch.manual_seed(seed + k)
            for layer in member.modules():  # fresh, seed-dependent initialisation
                if layer is not member and hasattr(layer, "reset_parameters"):
                    layer.reset_parameters()  # type: ignore[operator]
            if isinstance(member, HybridNet):
                member.reset_attention()
            member_dir = None if run_dir is None else Path(run_dir) / f"member_{k}"
            if member_dir is not None:
                member_dir.mkdir(parents=True, exist_ok=True)
            logger.info("member %d/%d: held-out records %s", k + 1, n_members, ",".join(held))
            results.append(
                train_net(member, tr, va, member_cfg, run_dir=member_dir, progress=progress)
            )
            logits = torch.from_numpy(predict_logits(member, va))
            oof[held_mask] = torch.log_softmax(logits, dim=1).numpy()
        calibration = None
        before = after = float("nan")
        if net.calibrate:
            calibration = fit_decision_bias(oof, pool.labels, class_names=pool.classes)
            net.set_decision_bias(calibration.bias)
            before, after = calibration.score_before, calibration.score_after
            logger.info(
                "decision offsets %s: out-of-fold %s %.4f -> %.4f",
                np.round(calibration.bias, 2).tolist(),
                calibration.objective,
                before,
                after,
            )
        net.eval()
        self.result = CrossFitResult(
            folds=tuple(folds),
            members=tuple(results),
            calibration=calibration,
            oof_macro_f1_before=before,
            oof_macro_f1_after=after,
            train_seconds=time.perf_counter() - t0,
            n_params=sum(p.numel() for p in net.parameters() if p.requires_grad),
        )
        if run_dir is not None:
            info = {
                "folds": [list(f) for f in folds],
                "member_best_epochs": [r.best_epoch for r in results],
                "member_stop_reasons": [r.stop_reason for r in results],
                "member_train_seconds": [r.train_seconds for r in results],
                "train_seconds": self.result.train_seconds,
                "calibration": None if calibration is None else calibration.to_dict(),
                "oof_per_class": _per_class(oof, pool.labels, net.decision_bias.numpy()),
            }
            Path(run_dir, "crossfit.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
            np.savez_compressed(
                Path(run_dir, "oof.npz"),
                log_proba=oof,
                labels=pool.labels,
                record=pool.record,
                sample_idx=pool.sample_idx,
            )
