"""``heartline bench rhythm``: the rhythm models and every baseline in one cross-validation.

Why this file is long (about 840 lines): one benchmark that runs every rhythm model and baseline
on the same folds and writes one report; the baselines' adapters are small and only used here.

Stratified ``n_folds``-fold cross-validation by record on the shared CinC 2017 records (the same
folds for every model; each network's early-stopping validation is carved out of its training
folds, stratified). Models, side by side:

* ``af_rule``: Heartline's AF rule (:func:`heartline.alerts.rules.detect_af_like` with its
  defaults) on Heartline's detected beats: ``A`` when it raises an episode, else ``N``;
* ``dash_rule``: Dash et al. (2009) with the published thresholds (nRMSSD > 0.1, turning-point
  ratio within mu +- 3 sigma of a random series, Shannon entropy > 0.7) on the whole record;
* ``rr_gbm``: the RR-irregularity features (Dash 2009, Sarkar 2008, Lake & Moorman 2011, beat
  and amplitude statistics) with scikit-learn's HistGradientBoostingClassifier;
* ``hand_gbm``: the same gradient boosting on the hybrid's whole hand-feature vector (RR
  features plus beat morphology, P wave, atrial activity and spectrum,
  :data:`heartline.features.rhythm.HAND_FEATURE_NAMES`): what the features alone give, so the
  network's own contribution can be read off;
* ``lstm``, ``cnn``: the LSTM-only and CNN-only networks of :mod:`heartline.models.rhythm`;
* ``hybrid``: the CNN-LSTM with the hand features (``hybrid_features="hand"``, the default;
  ``"rr"``: the RR features only) standardised on the training folds and fused into its head.

Scores on the pooled out-of-fold predictions (:func:`heartline.training.rhythm.rhythm_metrics`):
the challenge F1 (mean F1 of N, A, O), per-class Se / +P / F1 / AUC, confusion matrices, 95 %
bootstrap CIs by record, and the paired bootstrap difference of the hybrid against each other
model. The fold-0 hybrid is exported to ONNX and timed per 30 s window on one thread.

:func:`ship_rhythm_model` trains the shipped hybrid on the fixed 80 % split
(:func:`heartline.data.cinc2017.cinc2017_holdout`), scores it once on the 20 %, and writes
``rhythm.onnx``, ``rhythm.json`` and the model card ``rhythm.md``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from heartline.training.rhythm import RhythmFitConfig

__all__ = [
    "BENCH_MODELS",
    "RhythmBenchConfig",
    "run_rhythm_benchmark",
    "ship_rhythm_model",
    "write_rhythm_report",
]

log = logging.getLogger(__name__)

#: Every model the benchmark can run, baselines first.
BENCH_MODELS: tuple[str, ...] = (
    "af_rule",
    "dash_rule",
    "rr_gbm",
    "hand_gbm",
    "lstm",
    "cnn",
    "hybrid",
)
NETWORKS = ("lstm", "cnn", "hybrid")
CLASSES = ("N", "A", "O", "~")


@dataclass(frozen=True)
class RhythmBenchConfig:
    """Settings of one benchmark run (saved in ``rhythm.json``).

    ``quick``: a stratified subset of ``quick_records`` records, 2 folds, 1 epoch, 200
    bootstrap draws: a smoke test in well under a minute, not a result.
    """

    n_folds: int = 5
    seed: int = 0
    models: tuple[str, ...] = BENCH_MODELS
    epochs: int = 4
    patience: int = 6
    batch_size: int = 32
    lr: float = 3e-3
    class_weight_power: float = 0.5
    fs_hz: float = 100.0
    window_s: float = 30.0
    train_crop_s: float = 15.0
    n_bootstrap: int = 1000
    quick: bool = False
    quick_records: int = 120
    gbm_max_iter: int = 300
    measure_inference: bool = True
    baseline_epochs: int | None = None
    hybrid_features: str = "hand"
    hybrid_head: str = "stack"
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        unknown = [m for m in self.models if m not in BENCH_MODELS]
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; valid: {', '.join(BENCH_MODELS)}")
        if self.n_folds < 2:
            raise ValueError(f"n_folds must be >= 2, got {self.n_folds}")
        if self.hybrid_features not in ("rr", "hand"):
            raise ValueError(
                f"hybrid_features must be 'rr' or 'hand', got {self.hybrid_features!r}"
            )
        if self.hybrid_head not in ("mlp", "stack"):
            raise ValueError(f"hybrid_head must be 'mlp' or 'stack', got {self.hybrid_head!r}")

    def epochs_for(self, name: str) -> int:
        """Epochs of network ``name``: ``epochs`` for the hybrid, ``baseline_epochs`` (default
        ``epochs``) for the CNN-only and LSTM-only baselines."""
        if name == "hybrid" or self.baseline_epochs is None:
            return self.epochs
        return self.baseline_epochs

    def fit_config(self, *, epochs: int, seed: int) -> RhythmFitConfig:
        """Training settings of one network of this run (``epochs`` and ``seed`` per network)."""
        from heartline.training.rhythm import RhythmFitConfig

        return RhythmFitConfig(
            epochs=epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            class_weight_power=self.class_weight_power,
            window_s=self.window_s,
            train_crop_s=self.train_crop_s,
            patience=self.patience,
            seed=seed,
        )

    def effective(self) -> RhythmBenchConfig:
        """The settings actually used (``quick`` shrinks folds, epochs and bootstrap)."""
        if not self.quick:
            return self
        return replace(
            self,
            n_folds=2,
            epochs=1,
            baseline_epochs=None,
            patience=1,
            n_bootstrap=200,
            gbm_max_iter=50,
            measure_inference=False,
        )


# --------------------------------------------------------------------------------------------
# baselines
# --------------------------------------------------------------------------------------------
def _af_rule_labels(
    records: Sequence[str], *, data_dir: Any, cache_dir: Path, on_record: Callable[[], None]
) -> np.ndarray:
    """1 where Heartline's AF rule fires on the record's detected beats (cached by record list)."""
    import hashlib

    from heartline.alerts.rules import BeatSeries, detect_af_like
    from heartline.data.cinc2017 import read_cinc2017
    from heartline.signal.rpeaks import detect_r_peaks

    key = hashlib.sha256(("|".join(records) + "|af_rule|v1").encode()).hexdigest()[:16]
    path = cache_dir / f"cinc2017_afrule_{key}.npy"
    if path.is_file():
        return np.load(path)
    out = np.zeros(len(records), dtype=np.int64)
    for i, rec in enumerate(records):
        x, fs = read_cinc2017(rec, data_dir=data_dir)
        peaks = detect_r_peaks(x.astype(np.float64), fs=fs).sample_idx
        if peaks.size:
            series = BeatSeries.from_samples(peaks, np.full(peaks.size, "N"), fs=fs)
            out[i] = int(len(detect_af_like(series)) > 0)
        on_record()
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


def _dash_rule_labels(rr: np.ndarray, lengths_s: np.ndarray) -> np.ndarray:
    """Dash et al. (2009) published thresholds on the whole-record features."""
    from heartline.features.rhythm import RR_FEATURE_NAMES

    col = {n: i for i, n in enumerate(RR_FEATURE_NAMES)}
    n_rr = np.maximum(rr[:, col["n_beats_per_10s"]] * lengths_s / 10.0 - 1.0, 0.0)
    m = n_rr - 2 * np.floor((n_rr + 8) / 16)
    mu = 2.0 * (m - 2) / 3.0
    sigma = np.sqrt(np.maximum(16.0 * m - 29.0, 0.0) / 90.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = (mu - 3 * sigma) / np.maximum(m, 1)
        hi = (mu + 3 * sigma) / np.maximum(m, 1)
    tpr = rr[:, col["tpr_dash"]]
    af = (
        (rr[:, col["nrmssd_dash"]] > 0.1)
        & (tpr > lo)
        & (tpr < hi)
        & (rr[:, col["shannon_entropy_dash"]] > 0.7)
        & (m >= 8)
    )
    return af.astype(np.int64)


def _arrays_cached(index: Any, fs_hz: float, cache: Path) -> bool:
    from heartline.training.rhythm import rhythm_cache_path

    return rhythm_cache_path(index["record"].tolist(), fs_hz, cache).is_file()


def _hard_proba(labels: np.ndarray) -> np.ndarray:
    """One-hot ``(n, 4)`` of class indices (rules give hard labels)."""
    return np.eye(4)[np.asarray(labels, dtype=np.int64)]


def fit_stacked_hybrid(
    src: Any,
    train_idx: np.ndarray,
    inner_val: np.ndarray,
    *,
    make_net: Callable[[], Any],
    fit_cfg: Any,
    cfg: RhythmBenchConfig,
    on_epoch: Callable[[dict[str, float]], None],
) -> tuple[list[Any], Any, list[dict[str, float]]]:
    """The stacked hybrid: two cross-fitted CNN-LSTMs and one boosted head.

    The training records ``train_idx`` (minus the inner validation records ``inner_val``) are
    split in two stratified halves; a CNN-BiLSTM (hand features fused) is trained on each half,
    early-stopped on the inner validation records. Each training record gets the class
    log-probabilities of the network that did not see it (the validation records get the mean
    of both), and a gradient-boosted head is fitted on the training records' [hand features,
    network log-probabilities] (the network outputs on records it trained on would be
    over-confident: cross-fitting keeps the head honest). Used by the cross-validation (one
    outer fold) and by :func:`ship_rhythm_model` (the fixed 80 %).

    Returns
    -------
    tuple
        The two networks, the fitted head (a ``HistGradientBoostingClassifier`` on
        ``[hand features, log(p + 1e-6)]``) and the two networks' histories (concatenated).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    from heartline.data.cinc2017 import cinc2017_holdout
    from heartline.training.rhythm import class_weights, fit_rhythm, predict_rhythm_proba

    fit_idx = train_idx[~inner_val]
    val_idx = train_idx[inner_val]
    half = cinc2017_holdout(src.y[fit_idx], test_fraction=0.5, seed=fit_cfg.seed + 1000)
    parts = (fit_idx[~half], fit_idx[half])
    va = src.subset(val_idx)
    oof = {}
    p_val = np.zeros((val_idx.size, 4))
    history: list[dict[str, float]] = []
    nets = []
    for j, own in enumerate(parts):
        other = parts[1 - j]
        net, hist = fit_rhythm(make_net(), src.subset(own), va, fit_cfg, on_epoch=on_epoch)
        history += [{**h, "half": float(j)} for h in hist]
        oof[j] = (other, predict_rhythm_proba(net, src.subset(other), window_s=cfg.window_s))
        p_val += 0.5 * predict_rhythm_proba(net, va, window_s=cfg.window_s)
        nets.append(net)
    rows = np.concatenate([oof[0][0], oof[1][0], val_idx])
    p_rows = np.concatenate([oof[0][1], oof[1][1], p_val])
    x_head = np.hstack([src.rr[rows], np.log(p_rows + 1e-6)])
    y_head = src.y[rows]
    head = HistGradientBoostingClassifier(
        max_iter=cfg.gbm_max_iter,
        learning_rate=0.05,
        early_stopping=False,
        random_state=cfg.seed,
    )
    head.fit(x_head, y_head, sample_weight=class_weights(y_head, cfg.class_weight_power)[y_head])
    return nets, head, history


def stacked_net_proba(nets: Sequence[Any], arrays: Any, window_s: float = 30.0) -> np.ndarray:
    """Mean of the networks' record probabilities ``(n, 4)`` (each averaged over 30 s windows)."""
    from heartline.training.rhythm import predict_rhythm_proba

    p = np.zeros((len(arrays), 4))
    for net in nets:
        p += predict_rhythm_proba(net, arrays, window_s=window_s) / len(nets)
    return p


def stacked_head_proba(head: Any, hand: np.ndarray, p_net: np.ndarray) -> np.ndarray:
    """The head's probabilities ``(n, 4)`` on ``[hand features, log(p_net + 1e-6)]``."""
    out = np.zeros((hand.shape[0], 4))
    out[:, head.classes_] = head.predict_proba(np.hstack([hand, np.log(p_net + 1e-6)]))
    return out


def _stacked_hybrid(
    src: Any,
    train_idx: np.ndarray,
    inner_val: np.ndarray,
    test_rows: np.ndarray,
    *,
    make_net: Callable[[], Any],
    fit_cfg: Any,
    cfg: RhythmBenchConfig,
    on_epoch: Callable[[dict[str, float]], None],
) -> tuple[np.ndarray, list[dict[str, float]], Any]:
    """The stacked hybrid of one outer fold (:func:`fit_stacked_hybrid`), scored on its test rows.

    A test record's head input is the mean of both networks' probabilities. Nothing of the test
    fold is used before its prediction.

    Returns
    -------
    tuple
        Test probabilities ``(len(test_rows), 4)``, the two networks' histories (concatenated)
        and the first network (for the inference timing).
    """
    nets, head, history = fit_stacked_hybrid(
        src, train_idx, inner_val, make_net=make_net, fit_cfg=fit_cfg, cfg=cfg, on_epoch=on_epoch
    )
    te = src.subset(test_rows)
    p_test = stacked_net_proba(nets, te, cfg.window_s)
    return stacked_head_proba(head, te.rr, p_test), history, nets[0]


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------
def _quick_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """About ``n`` records, every class represented (at least 20 each where available)."""
    rng = np.random.default_rng(seed)
    picks = []
    for c in CLASSES:
        idx = np.flatnonzero(labels == c)
        k = min(idx.size, max(20, round(n * idx.size / labels.size)))
        picks.append(rng.choice(idx, size=k, replace=False))
    return np.sort(np.concatenate(picks))


def _paired_delta(
    y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, n_bootstrap: int, seed: int
) -> dict[str, float]:
    """CinC F1 of a minus b with a 95 % paired bootstrap CI by record."""
    from heartline.training.rhythm import cinc_f1

    rng = np.random.default_rng(seed)
    d = cinc_f1(y, pred_a) - cinc_f1(y, pred_b)
    samples = []
    for _ in range(n_bootstrap):
        i = rng.integers(0, y.size, size=y.size)
        samples.append(cinc_f1(y[i], pred_a[i]) - cinc_f1(y[i], pred_b[i]))
    lo, hi = np.percentile(samples, [2.5, 97.5]) if samples else (math.nan, math.nan)
    return {"delta": float(d), "ci95": [float(lo), float(hi)]}


def _time_onnx(path: Path, x: np.ndarray, m: np.ndarray, rr: np.ndarray, n: int = 200) -> dict:
    from heartline.edge.rhythm import OnnxRhythmClassifier

    clf = OnnxRhythmClassifier(path, num_threads=1)
    xb, mb, rb = x[:1], m[:1], rr[:1]
    for _ in range(10):
        clf.predict_windows(xb, mb, rb)
    times = []
    cpu0 = time.process_time()
    for _ in range(n):
        t = time.perf_counter()
        clf.predict_windows(xb, mb, rb)
        times.append(time.perf_counter() - t)
    cpu_ms = 1000 * (time.process_time() - cpu0) / n
    return {
        "ms_per_30s_window_median": 1000 * float(np.median(times)),
        "ms_per_30s_window_p95": 1000 * float(np.percentile(times, 95)),
        "cpu_ms_per_30s_window_mean": cpu_ms,
        "load_average": list(os.getloadavg()),
        "runs": n,
        "threads": 1,
        "batch": 1,
        "onnx_bytes": path.stat().st_size,
    }


def _time_end_to_end(path: Path, records: Sequence[str], data_dir: Any, n: int = 20) -> dict:
    """Whole torch-free path per 30 s record: filtering, resampling, detector, features, ONNX."""
    from heartline.data.cinc2017 import read_cinc2017
    from heartline.edge.rhythm import OnnxRhythmClassifier

    clf = OnnxRhythmClassifier(path, num_threads=1)
    sigs = [read_cinc2017(r, data_dir=data_dir) for r in records[:n]]
    sigs = [(x[:9000], fs) for x, fs in sigs if x.size >= 9000] or sigs
    times = []
    cpu0 = time.process_time()
    for x, fs in sigs:
        t = time.perf_counter()
        clf.classify(x, fs=fs)
        times.append(time.perf_counter() - t)
    return {
        "ms_per_30s_record_median": 1000 * float(np.median(times)),
        "cpu_ms_per_30s_record_mean": 1000 * (time.process_time() - cpu0) / max(len(times), 1),
        "records": len(times),
    }


def run_rhythm_benchmark(
    config: RhythmBenchConfig | None = None,
    *,
    out: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Run the cross-validation; returns the report dict that :func:`write_rhythm_report` writes.

    ``on_progress(description, done, total)`` is called as work completes (progress bars).
    """
    import torch

    from heartline.data.cinc2017 import cinc2017_folds, cinc2017_holdout, load_cinc2017_index
    from heartline.models.rhythm import HYBRID_HAND_PARAMS, build_rhythm_model
    from heartline.training.rhythm import (
        build_rhythm_arrays,
        class_weights,
        default_cache_dir,
        export_rhythm_onnx,
        fit_rhythm,
        predict_rhythm_proba,
        rhythm_metrics,
        window_batches,
        with_hand_features,
    )
    from heartline.training.rundir import git_revision, platform_info

    requested = config or RhythmBenchConfig()
    cfg = requested.effective()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    t_start = time.perf_counter()
    torch.set_num_threads(1)

    index = load_cinc2017_index(data_dir=data_dir)
    labels_all = index["label"].to_numpy()
    if cfg.quick:
        index = index.iloc[_quick_subset(labels_all, cfg.quick_records, cfg.seed)].reset_index(
            drop=True
        )
    full_index = load_cinc2017_index(data_dir=data_dir) if cfg.quick else None
    records = index["record"].tolist()
    n = len(records)
    net_epochs = sum(
        cfg.epochs_for(m) * (2 if m == "hybrid" and cfg.hybrid_head == "stack" else 1)
        for m in cfg.models
        if m in NETWORKS
    )
    need_hand = "hand_gbm" in cfg.models or (
        "hybrid" in cfg.models and cfg.hybrid_features == "hand"
    )
    total = n * (1 + ("af_rule" in cfg.models) + need_hand) + cfg.n_folds * (net_epochs + 1)
    done = 0

    def tick(desc: str, k: int = 1) -> None:
        nonlocal done
        done += k
        if on_progress is not None:
            on_progress(desc, min(done, total), total)

    t0 = time.perf_counter()
    arrays = None
    if full_index is not None and _arrays_cached(full_index, cfg.fs_hz, cache):
        # quick mode: reuse the full preprocessed cache when a full run made it
        full = build_rhythm_arrays(full_index, data_dir=data_dir, fs_hz=cfg.fs_hz, cache_dir=cache)
        pos = {r: i for i, r in enumerate(full.records.tolist())}
        arrays = full.subset(np.asarray([pos[r] for r in records], dtype=np.int64))
    arrays = arrays or build_rhythm_arrays(
        index,
        data_dir=data_dir,
        fs_hz=cfg.fs_hz,
        cache_dir=cache,
        on_record=lambda r: tick(f"preprocess {r}"),
    )
    if done < n:
        tick("preprocess (cached)", n - done)
    hand = None
    if need_hand:
        from heartline.training.rhythm import build_hand_features

        mark = done
        hand = build_hand_features(
            records, data_dir=data_dir, cache_dir=cache, on_record=lambda r: tick(f"features {r}")
        )
        if done < mark + n:
            tick("features (cached)", mark + n - done)
    arrays_hybrid = (
        with_hand_features(arrays, hand)
        if hand is not None and cfg.hybrid_features == "hand"
        else arrays
    )
    prep_s = time.perf_counter() - t0
    y = arrays.y
    folds = cinc2017_folds(index["label"], n_splits=cfg.n_folds, seed=cfg.seed)
    probas: dict[str, np.ndarray] = {}
    fold_scores: dict[str, list[float]] = {m: [] for m in cfg.models}
    train_s: dict[str, float] = dict.fromkeys(cfg.models, 0.0)
    histories: dict[str, list[list[dict[str, float]]]] = {
        m: [] for m in cfg.models if m in NETWORKS
    }
    timing: dict[str, Any] = {}
    lengths_s = arrays.lengths / arrays.fs_hz

    if "af_rule" in cfg.models:
        t = time.perf_counter()
        fired = _af_rule_labels(
            records, data_dir=data_dir, cache_dir=cache, on_record=lambda: tick("af_rule")
        )
        if done < n * (2 + need_hand):
            tick("af_rule (cached)", n * (2 + need_hand) - done)
        probas["af_rule"] = _hard_proba(fired)  # class 1 (A) when it fires, else 0 (N)
        train_s["af_rule"] = time.perf_counter() - t
    if "dash_rule" in cfg.models:
        probas["dash_rule"] = _hard_proba(_dash_rule_labels(arrays.rr, lengths_s))
    for m in cfg.models:
        if m not in probas:
            probas[m] = np.zeros((n, 4))

    from heartline.training.rhythm import cinc_f1

    for k in range(cfg.n_folds):
        test = folds == k
        train_idx = np.flatnonzero(~test)
        inner_val = cinc2017_holdout(
            y[train_idx], test_fraction=cfg.val_fraction, seed=cfg.seed + k
        )
        if "rr_gbm" in cfg.models:
            from sklearn.ensemble import HistGradientBoostingClassifier

            t = time.perf_counter()
            trg = arrays.subset(train_idx)
            clf = HistGradientBoostingClassifier(
                max_iter=cfg.gbm_max_iter,
                learning_rate=0.05,
                early_stopping=False,
                random_state=cfg.seed,
            )
            clf.fit(
                trg.rr, trg.y, sample_weight=class_weights(trg.y, cfg.class_weight_power)[trg.y]
            )
            p = np.zeros((int(test.sum()), 4))
            p[:, clf.classes_] = clf.predict_proba(arrays.rr[test])
            probas["rr_gbm"][test] = p
            train_s["rr_gbm"] += time.perf_counter() - t
        if "hand_gbm" in cfg.models and hand is not None:
            from sklearn.ensemble import HistGradientBoostingClassifier

            t = time.perf_counter()
            ytr = y[train_idx]
            clf = HistGradientBoostingClassifier(
                max_iter=cfg.gbm_max_iter,
                learning_rate=0.05,
                early_stopping=False,
                random_state=cfg.seed,
            )
            clf.fit(
                hand[train_idx], ytr, sample_weight=class_weights(ytr, cfg.class_weight_power)[ytr]
            )
            p = np.zeros((int(test.sum()), 4))
            p[:, clf.classes_] = clf.predict_proba(hand[test])
            probas["hand_gbm"][test] = p
            train_s["hand_gbm"] += time.perf_counter() - t
        tick(f"fold {k + 1}: gbm")
        for name in NETWORKS:
            if name not in cfg.models:
                continue
            t = time.perf_counter()
            src = arrays_hybrid if name == "hybrid" else arrays
            tr = src.subset(train_idx[~inner_val])
            va = src.subset(train_idx[inner_val])
            te = src.subset(np.flatnonzero(test))
            n_ep = cfg.epochs_for(name)
            torch.manual_seed(cfg.seed + k)
            hybrid_kw = (
                HYBRID_HAND_PARAMS if name == "hybrid" and cfg.hybrid_features == "hand" else {}
            )
            net = build_rhythm_model(name, n_rr=src.rr.shape[1], fs_hz=cfg.fs_hz, **hybrid_kw)
            fit_cfg = cfg.fit_config(epochs=n_ep, seed=cfg.seed + k)
            ep_done = 0

            def on_epoch(rec: dict[str, float], _name: str = name, _k: int = k) -> None:
                nonlocal ep_done
                ep_done += 1
                tick(f"fold {_k + 1}: {_name} epoch {int(rec['epoch'])}")

            if name == "hybrid" and cfg.hybrid_head == "stack":

                def make_net(_src: Any = src, _kw: dict[str, int] = hybrid_kw) -> Any:
                    return build_rhythm_model(
                        "hybrid", n_rr=_src.rr.shape[1], fs_hz=cfg.fs_hz, **_kw
                    )

                p_te, hist, net = _stacked_hybrid(
                    src,
                    train_idx,
                    inner_val,
                    np.flatnonzero(test),
                    make_net=make_net,
                    fit_cfg=fit_cfg,
                    cfg=cfg,
                    on_epoch=on_epoch,
                )
                probas[name][test] = p_te
            else:
                net, hist = fit_rhythm(net, tr, va, fit_cfg, on_epoch=on_epoch)
                probas[name][test] = predict_rhythm_proba(net, te, window_s=cfg.window_s)
            n_ep_run = 2 * n_ep if (name == "hybrid" and cfg.hybrid_head == "stack") else n_ep
            if ep_done < n_ep_run:
                tick(f"fold {k + 1}: {name} stopped early", n_ep_run - ep_done)
            histories[name].append(hist)
            train_s[name] += time.perf_counter() - t
            if name == "hybrid" and k == 0 and cfg.measure_inference:
                onnx_path = export_rhythm_onnx(net, out / "hybrid_fold0.onnx", name="hybrid")
                x, msk, rr, _own = window_batches(te.subset(np.arange(min(8, len(te)))))
                timing = _time_onnx(onnx_path, x, msk, rr)
                timing.update(_time_end_to_end(onnx_path, te.records.tolist(), data_dir))
        for m in cfg.models:
            yt = y[test]
            fold_scores[m].append(cinc_f1(yt, probas[m][test].argmax(1)))

    report_models = list(cfg.models)
    if "hybrid" in cfg.models and "hand_gbm" in cfg.models:
        # an ensemble: a different model, reported beside the hybrid, never in its place
        probas["hybrid+hand_gbm"] = 0.5 * (probas["hybrid"] + probas["hand_gbm"])
        fold_scores["hybrid+hand_gbm"] = [
            cinc_f1(y[folds == k], probas["hybrid+hand_gbm"][folds == k].argmax(1))
            for k in range(cfg.n_folds)
        ]
        train_s["hybrid+hand_gbm"] = train_s["hybrid"] + train_s["hand_gbm"]
        report_models.append("hybrid+hand_gbm")
    results = {}
    for m in report_models:
        metrics = rhythm_metrics(
            y,
            probas[m],
            n_bootstrap=cfg.n_bootstrap,
            seed=cfg.seed,
            has_scores=m not in ("af_rule", "dash_rule"),
        ).to_dict()
        metrics["fold_cinc_f1"] = fold_scores[m]
        metrics["train_and_predict_s"] = train_s[m]
        if m in histories:
            metrics["history"] = histories[m]
        results[m] = metrics
    deltas = {}
    if "hybrid" in cfg.models:
        for m in report_models:
            if m != "hybrid":
                deltas[m] = _paired_delta(
                    y,
                    probas["hybrid"].argmax(1),
                    probas[m].argmax(1),
                    min(cfg.n_bootstrap, 1000),
                    cfg.seed,
                )
    np.savez(
        out / "rhythm_oof.npz",
        records=np.asarray(records),
        y=y,
        folds=folds,
        **{f"proba_{m}": probas[m] for m in report_models},
    )
    return {
        "benchmark": "rhythm",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "git_revision": git_revision(),
        "platform": platform_info(),
        "config": asdict(requested),
        "effective_config": asdict(cfg),
        "dataset": {
            "name": "cinc2017 (shared 5,543-record share of the training set)",
            "n_records": n,
            "class_counts": {c: int((y == i).sum()) for i, c in enumerate(CLASSES)},
            "folds": "stratified by label, by record, seed " + str(cfg.seed),
        },
        "preprocess_s": prep_s,
        "wall_s": time.perf_counter() - t_start,
        "models": results,
        "hybrid_minus": deltas,
        "inference": timing,
        "targets": {"cinc_f1": 0.83, "f1_A": 0.88, "ms_per_30s_window": 5.0},
    }


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------
def _fmt(v: Any, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.3f}"


def render_rhythm_markdown(report: dict[str, Any], command: str = "heartline bench rhythm") -> str:
    """The Markdown summary of a report."""
    cfg = report["effective_config"]
    lines = [
        f"# Rhythm benchmark (CinC 2017), {report['date']}",
        "",
        f"Commit `{report['git_revision']}`; command `{command}`; "
        f"{report['dataset']['n_records']} records "
        f"({', '.join(f'{c} {k}' for c, k in report['dataset']['class_counts'].items())}); "
        f"{cfg['n_folds']}-fold stratified cross-validation by record (seed {cfg['seed']}); "
        f"wall time {report['wall_s']:.0f} s on {report['platform'].get('cpu', '?')} "
        "(1 torch thread; a shared machine, timings inflated by other load).",
        "",
    ]
    if cfg.get("quick"):
        lines += ["**QUICK mode: a small subset, 1 epoch: a smoke test, not a result.**", ""]
    lines += [
        "CinC F1 = mean of F1(N), F1(A), F1(O) over the pooled out-of-fold predictions; "
        "[95 % bootstrap CI by record]; fold F1 = mean +- sd of the per-fold CinC F1.",
        "",
        "| model | CinC F1 [95 % CI] | fold F1 | F1 N | F1 A [95 % CI] | F1 O | F1 ~ | "
        "Se A | +P A | AUC A | time s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m, r in report["models"].items():
        ci = r["ci95"].get("cinc_f1", [None, None])
        cia = r["ci95"].get("f1_A", [None, None])
        c = r["classes"]
        fs = np.asarray(r["fold_cinc_f1"], dtype=float)
        lines.append(
            f"| {m} | {_fmt(r['cinc_f1'])} [{_fmt(ci[0])}, {_fmt(ci[1])}] | "
            f"{fs.mean():.3f} +- {fs.std():.3f} | {_fmt(c['N']['f1'])} | "
            f"{_fmt(c['A']['f1'])} [{_fmt(cia[0])}, {_fmt(cia[1])}] | {_fmt(c['O']['f1'])} | "
            f"{_fmt(c['~']['f1'])} | {_fmt(c['A']['se'])} | {_fmt(c['A']['ppv'])} | "
            f"{_fmt(c['A']['auc'])} | {r['train_and_predict_s']:.0f} |"
        )
    if report.get("hybrid_minus"):
        lines += ["", "Hybrid minus each model, CinC F1 (paired bootstrap by record):", ""]
        for m, d in report["hybrid_minus"].items():
            lines.append(f"- vs {m}: {d['delta']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]")
    t = report.get("inference") or {}
    tg = report["targets"]
    h = report["models"].get("hybrid")
    lines += ["", "## Targets", ""]
    if h is not None:
        # ensembles that contain the hybrid (``a+b`` rows) are other models, not baselines
        base = {m: r for m, r in report["models"].items() if m != "hybrid" and "+" not in m}
        others = [r["cinc_f1"] for r in base.values()]
        others_a = [r["classes"]["A"]["f1"] for r in base.values()]
        ahead = all(h["cinc_f1"] > o for o in others) and all(
            h["classes"]["A"]["f1"] > o for o in others_a if o is not None
        )
        lines += [
            f"- CinC F1 >= {tg['cinc_f1']}: hybrid {h['cinc_f1']:.3f} "
            f"({'met' if h['cinc_f1'] >= tg['cinc_f1'] else 'NOT met'})",
            f"- AF F1 >= {tg['f1_A']}: hybrid {h['classes']['A']['f1']:.3f} "
            f"({'met' if h['classes']['A']['f1'] >= tg['f1_A'] else 'NOT met'})",
            f"- ahead of every baseline on both: {'yes' if ahead else 'NO'}",
        ]
    if t:
        lines.append(
            f"- inference <= {tg['ms_per_30s_window']} ms per 30 s window (ONNX Runtime, 1 thread, "
            f"batch 1, fold-0 hybrid): median {t['ms_per_30s_window_median']:.2f} ms, p95 "
            f"{t['ms_per_30s_window_p95']:.2f} ms "
            f"({'met' if t['ms_per_30s_window_median'] <= tg['ms_per_30s_window'] else 'NOT met'}); "
            f"whole torch-free path per 30 s record (filter, resample, R-peak detector, "
            f"features, ONNX): {t['ms_per_30s_record_median']:.1f} ms"
        )
    lines += ["", "## Confusion matrices (rows reference, columns predicted: N A O ~)", ""]
    for m, r in report["models"].items():
        cm = r["confusion_matrix"]
        lines.append(f"- {m}: " + "; ".join(" ".join(str(v) for v in row) for row in cm))
    lines += [
        "",
        "Baselines: `af_rule` = `heartline.alerts.rules.detect_af_like` (defaults: 64-interval "
        "windows, 30 s minimum episode) on Heartline's detected beats, A if it fires else N; "
        "`dash_rule` = Dash et al. 2009 thresholds on the whole record; `rr_gbm` = "
        "HistGradientBoosting on the RR-irregularity features; `hand_gbm` = the same on the "
        "hybrid's hand features (RR + beat morphology, P wave, T-Q atrial activity, spectrum); "
        "`lstm` / `cnn` = LSTM-only / CNN-only networks (no hand features); `hybrid` = CNN + "
        "BiLSTM + attention with the hand features (RR only when `hybrid_features` is `rr`) "
        "standardised on the training folds and fused into its head; `hybrid+hand_gbm` = an "
        "ensemble (mean of the two models' probabilities), a different model from the hybrid, "
        "not counted as a baseline.",
        "",
        "Plots: `rhythm_confusion.png`, `rhythm_f1.png`.",
    ]
    return "\n".join(lines) + "\n"


def write_rhythm_report(
    report: dict[str, Any], out: str | os.PathLike[str], *, command: str = "heartline bench rhythm"
) -> dict[str, Path]:
    """Write ``rhythm.json``, ``rhythm.md``, ``rhythm_confusion.png`` and ``rhythm_f1.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from heartline.training.rundir import write_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = {**report, "command": command}
    paths = {"json": write_json(out / "rhythm.json", report)}
    md = out / "rhythm.md"
    md.write_text(render_rhythm_markdown(report, command), encoding="utf-8")
    paths["md"] = md
    models = list(report["models"])
    ncol = min(3, len(models))
    nrow = math.ceil(len(models) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.3 * nrow), squeeze=False)
    for ax, m in zip(axes.ravel(), models, strict=False):
        cm = np.asarray(report["models"][m]["confusion_matrix"], dtype=float)
        rown = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.imshow(rown, cmap="Blues", vmin=0, vmax=1)
        for i in range(4):
            for j in range(4):
                ax.text(
                    j,
                    i,
                    int(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if rown[i, j] > 0.5 else "black",
                )
        ax.set_xticks(range(4), CLASSES)
        ax.set_yticks(range(4), CLASSES)
        ax.set_title(f"{m} (F1 {report['models'][m]['cinc_f1']:.3f})", fontsize=9)
        ax.set_xlabel("predicted")
        ax.set_ylabel("reference")
    for ax in axes.ravel()[len(models) :]:
        ax.axis("off")
    fig.tight_layout()
    paths["confusion_png"] = out / "rhythm_confusion.png"
    fig.savefig(paths["confusion_png"], dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / max(len(models), 1)
    for j, m in enumerate(models):
        vals = [report["models"][m]["classes"][c]["f1"] or 0.0 for c in CLASSES]
        vals.append(report["models"][m]["cinc_f1"])
        ax.bar(np.arange(5) + j * width - 0.4 + width / 2, vals, width, label=m)
    ax.axhline(0.83, color="k", ls="--", lw=0.8, label="target CinC F1 0.83")
    ax.set_xticks(range(5), ["F1 N", "F1 A", "F1 O", "F1 ~", "CinC F1"])
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncol=3)
    ax.set_title("CinC 2017 rhythm: per-class F1 (pooled out-of-fold)")
    fig.tight_layout()
    paths["f1_png"] = out / "rhythm_f1.png"
    fig.savefig(paths["f1_png"], dpi=110)
    plt.close(fig)
    return paths


# --------------------------------------------------------------------------------------------
# the shipped model
# --------------------------------------------------------------------------------------------
def default_assets_dir() -> Path:
    """``heartline/assets/models`` of this installation (where the shipped models live)."""
    return Path(__file__).resolve().parent.parent / "assets" / "models"


def ship_rhythm_model(
    *,
    out: str | os.PathLike[str],
    assets_dir: str | os.PathLike[str] | None = None,
    epochs: int = 8,
    seed: int = 0,
    fs_hz: float = 100.0,
    train_crop_s: float = 15.0,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    cv_report: str | os.PathLike[str] | None = None,
    command: str = "heartline bench rhythm-ship",
    on_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Train the shipped stacked hybrid on the fixed 80 % split, score it once on the 20 %, export.

    The design and settings are the cross-validated ``hybrid`` of :func:`run_rhythm_benchmark`
    (:func:`fit_stacked_hybrid`: two cross-fitted CNN-BiLSTMs with the hand features fused and a
    gradient-boosted head on their out-of-fold outputs), trained on the 80 % of
    :func:`heartline.data.cinc2017.cinc2017_holdout` (its early-stopping validation, 10 % of
    the 80 %, stratified, carved out of it). The 20 % test records are used once, after
    training, for the reported scores, with ``rr_gbm`` and ``hand_gbm`` fitted on the same 80 %
    for comparison. Exported as one ONNX file (both networks and the head as an ``ai.onnx.ml``
    TreeEnsemble) and checked against the PyTorch + scikit-learn reference on the test records.
    Writes ``rhythm.onnx``, ``rhythm.json`` and the model card ``rhythm.md`` to ``out`` and
    copies them to ``assets_dir`` (the package's ``assets/models`` by default).

    ``cv_report``: the ``rhythm.json`` of the cross-validation the design comes from; its
    ``hybrid`` figures are quoted in the card.
    """
    import torch

    from heartline.data.cinc2017 import cinc2017_holdout, load_cinc2017_index
    from heartline.models.rhythm import HYBRID_HAND_PARAMS, build_rhythm_model
    from heartline.training.rhythm import (
        build_hand_features,
        build_rhythm_arrays,
        with_hand_features,
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    cpu_start = time.process_time()
    torch.set_num_threads(1)
    index = load_cinc2017_index(data_dir=data_dir)
    n = len(index)
    state = {"done": 0}
    total = n + 2 * epochs + 2

    def tick(desc: str, k: int = 1) -> None:
        state["done"] += k
        if on_progress is not None:
            on_progress(desc, min(state["done"], total), total)

    arrays = build_rhythm_arrays(
        index, data_dir=data_dir, fs_hz=fs_hz, cache_dir=cache_dir, on_record=lambda r: tick(r)
    )
    if state["done"] < n:
        tick("preprocess (cached)", n - state["done"])
    hand = build_hand_features(index["record"].tolist(), data_dir=data_dir, cache_dir=cache_dir)
    arrays = with_hand_features(arrays, hand)
    test = cinc2017_holdout(index["label"], test_fraction=0.2, seed=seed)
    train_idx = np.flatnonzero(~test)
    inner_val = cinc2017_holdout(arrays.y[train_idx], test_fraction=0.1, seed=seed + 1)
    # the cross-validation's settings (RhythmBenchConfig defaults), one "fold": the 80 %
    cfg = RhythmBenchConfig(epochs=epochs, seed=seed, fs_hz=fs_hz, train_crop_s=train_crop_s)
    fit_cfg = cfg.fit_config(epochs=epochs, seed=seed)

    def make_net() -> Any:
        return build_rhythm_model(
            "hybrid", n_rr=arrays.rr.shape[1], fs_hz=fs_hz, **HYBRID_HAND_PARAMS
        )

    torch.manual_seed(seed)
    make_net()  # the cross-validation builds (and discards) one network first: same RNG state
    t = time.perf_counter()
    nets, head, hist = fit_stacked_hybrid(
        arrays,
        train_idx,
        inner_val,
        make_net=make_net,
        fit_cfg=fit_cfg,
        cfg=cfg,
        on_epoch=lambda r: tick(f"network epoch {int(r['epoch'])}"),
    )
    train_s = time.perf_counter() - t
    if len(hist) < 2 * epochs:
        tick("stopped early", 2 * epochs - len(hist))
    split = {
        "protocol": f"cinc2017_holdout(test_fraction=0.2, seed={seed}), stratified by label",
        "inner_validation": f"cinc2017_holdout(train labels, test_fraction=0.1, seed={seed + 1})",
        "halves": f"cinc2017_holdout(fit labels, test_fraction=0.5, seed={seed + 1000})",
        "n_train": int(train_idx.size - inner_val.sum()),
        "n_val": int(inner_val.sum()),
        "n_test": int(test.sum()),
        "test_class_counts": {c: int((arrays.y[test] == i).sum()) for i, c in enumerate(CLASSES)},
    }
    report = score_shipped_rhythm(
        nets,
        head,
        arrays,
        train_idx,
        np.flatnonzero(test),
        out=out,
        seed=seed,
        data_dir=data_dir,
        cfg=cfg,
        extra={
            "command": command,
            "split": split,
            "fit_config": asdict(fit_cfg),
            "bench_config": asdict(cfg),
            "train_s": train_s,
            "history": hist,
            "cv": _cv_summary(cv_report),
        },
    )
    report["wall_s"] = time.perf_counter() - t_start
    report["cpu_s"] = time.process_time() - cpu_start
    install_rhythm_model(report, out, assets_dir)
    tick("scored", 2)
    return report


def _cv_summary(path: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """The cross-validated ``hybrid`` figures of a ``heartline bench rhythm`` report."""
    if path is None:
        return None
    import json

    r = json.loads(Path(path).read_text(encoding="utf-8"))
    h = r["models"]["hybrid"]
    return {
        "source": str(path),
        "date": r.get("date"),
        "git_revision": r.get("git_revision"),
        "command": r.get("command"),
        "n_folds": r.get("config", {}).get("n_folds"),
        "epochs": r.get("config", {}).get("epochs"),
        "cinc_f1": h["cinc_f1"],
        "ci95": h["ci95"],
        "f1": {c: h["classes"][c]["f1"] for c in CLASSES},
        "fold_cinc_f1": h.get("fold_cinc_f1"),
        "hand_gbm_cinc_f1": r["models"].get("hand_gbm", {}).get("cinc_f1"),
    }


def score_shipped_rhythm(
    nets: Sequence[Any],
    head: Any,
    arrays: Any,
    train_idx: np.ndarray,
    test_rows: np.ndarray,
    *,
    out: Path,
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    cfg: RhythmBenchConfig | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export the stacked hybrid to ``out/rhythm.onnx`` and score it once on ``test_rows``.

    Scores come from ONNX Runtime (:meth:`heartline.edge.rhythm.OnnxRhythmClassifier.predict_record`
    on each test record's windows). Checks: ONNX vs the PyTorch networks + scikit-learn head
    on the test records; the head alone (ONNX TreeEnsemble vs ``predict_proba``) on the test
    records' real head inputs; the whole torch-free path (``classify`` on the raw records) on
    a sample of them. ``rr_gbm`` and ``hand_gbm`` fitted on ``train_idx`` are scored beside it.
    """
    import onnxruntime as ort
    from sklearn.ensemble import HistGradientBoostingClassifier

    from heartline.data.cinc2017 import read_cinc2017
    from heartline.edge.rhythm import OnnxRhythmClassifier
    from heartline.features.rhythm import RR_FEATURE_NAMES
    from heartline.training.gbm_onnx import hgb_classifier_onnx
    from heartline.training.rhythm import (
        STACK_LOG_EPS,
        class_weights,
        export_rhythm_onnx,
        rhythm_metrics,
        window_batches,
    )
    from heartline.training.rundir import git_revision, platform_info

    cfg = cfg or RhythmBenchConfig(seed=seed)
    onnx_path = export_rhythm_onnx(
        list(nets),
        out / "rhythm.onnx",
        name="stacked_hybrid",
        head=head,
        extra_metadata={"heartline.git_revision": git_revision(), "heartline.seed": str(seed)},
    )
    te = arrays.subset(test_rows)
    # reference: PyTorch networks + scikit-learn head (as the cross-validation scored)
    p_net_ref = stacked_net_proba(nets, te, cfg.window_s)
    x_head = np.hstack([te.rr.astype(np.float64), np.log(p_net_ref + STACK_LOG_EPS)])
    p_ref = stacked_head_proba(head, te.rr, p_net_ref)
    # the head alone on the same real inputs: ONNX TreeEnsemble vs predict_proba
    head_sess = ort.InferenceSession(
        hgb_classifier_onnx(head, x_head.shape[1]).SerializeToString(),
        providers=["CPUExecutionProvider"],
    )
    head_diff = float(
        np.abs(head_sess.run(None, {"x": x_head})[0] - head.predict_proba(x_head)).max()
    )
    # the shipped graph, record by record
    clf = OnnxRhythmClassifier(onnx_path, num_threads=1)
    x, m, rr, owner = window_batches(te, window_s=cfg.window_s)
    p_onnx = np.zeros((len(te), 4))
    for i in range(len(te)):
        w = owner == i
        p_onnx[i] = clf.predict_record(x[w], m[w], rr[w])
    parity = float(np.abs(p_onnx - p_ref).max())
    label_agree = float(np.mean(p_onnx.argmax(1) == p_ref.argmax(1)))
    metrics = rhythm_metrics(te.y, p_onnx, n_bootstrap=1000, seed=seed).to_dict()
    ref_metrics = rhythm_metrics(te.y, p_ref, n_bootstrap=0, seed=seed).to_dict()
    # the whole torch-free path on raw records (first 40 test records)
    sample = te.records.tolist()[:40]
    e2e = []
    for i, rec in enumerate(sample):
        sig, fs = read_cinc2017(rec, data_dir=data_dir)
        r = clf.classify(sig, fs=fs)
        e2e.append(np.abs(np.array([r.p_N, r.p_A, r.p_O, r.p_noisy]) - p_onnx[i]).max())
    # baselines on the same split
    trg = arrays.subset(train_idx)
    n_rr_only = len(RR_FEATURE_NAMES)
    base = {}
    for name, cols in (("rr_gbm", slice(0, n_rr_only)), ("hand_gbm", slice(None))):
        gbm = HistGradientBoostingClassifier(
            max_iter=cfg.gbm_max_iter, learning_rate=0.05, early_stopping=False, random_state=seed
        ).fit(
            trg.rr[:, cols],
            trg.y,
            sample_weight=class_weights(trg.y, cfg.class_weight_power)[trg.y],
        )
        p_gbm = np.zeros((len(te), 4))
        p_gbm[:, gbm.classes_] = gbm.predict_proba(te.rr[:, cols])
        base[name] = rhythm_metrics(te.y, p_gbm, n_bootstrap=1000, seed=seed).to_dict()
    timing = _time_onnx(onnx_path, x, m, rr)
    timing.update(_time_end_to_end(onnx_path, te.records.tolist(), data_dir))
    np.savez(
        out / "rhythm_test.npz",
        records=te.records,
        y=te.y,
        proba_onnx=p_onnx,
        proba_reference=p_ref,
    )
    report = {
        "model": "stacked_hybrid",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "git_revision": git_revision(),
        "platform": platform_info(),
        "load_average": list(os.getloadavg()),
        "fs_hz": float(nets[0].fs_hz),
        "n_networks": len(nets),
        "n_parameters": int(sum(p.numel() for net in nets for p in net.parameters())),
        "head": {
            "kind": "HistGradientBoostingClassifier",
            "max_iter": int(head.max_iter),
            "n_trees": int(sum(len(it) for it in head._predictors)),
            "n_features": int(head.n_features_in_),
        },
        "onnx_bytes": onnx_path.stat().st_size,
        **(extra or {}),
        "test_metrics_onnx": metrics,
        "test_metrics_reference": ref_metrics,
        "test_metrics_rr_gbm": base["rr_gbm"],
        "test_metrics_hand_gbm": base["hand_gbm"],
        "onnx_reference_max_abs_diff": parity,
        "onnx_reference_label_agreement": label_agree,
        "head_onnx_sklearn_max_abs_diff": head_diff,
        "classify_vs_arrays_max_abs_diff": float(max(e2e)) if e2e else math.nan,
        "classify_vs_arrays_records": len(e2e),
        "inference": timing,
        # the shipped model's test probabilities (ONNX Runtime), so that the card's figures
        # can be recomputed (rhythm_metrics(y, proba, n_bootstrap=1000, seed)) and the raw
        # records re-classified against them (tests/rhythm/test_stacked_rhythm.py)
        "test_predictions": {
            "records": [str(r) for r in te.records],
            "y": [int(v) for v in te.y],
            "proba": [[float(v) for v in row] for row in p_onnx],
            "n_bootstrap": 1000,
            "seed": seed,
        },
    }
    return report


def install_rhythm_model(
    report: dict[str, Any], out: Path, assets_dir: str | os.PathLike[str] | None = None
) -> None:
    """Write ``rhythm.json`` and the card next to ``rhythm.onnx`` and copy all three to the assets."""
    import shutil

    from heartline.training.rundir import write_json

    write_json(out / "rhythm.json", report)
    (out / "rhythm.md").write_text(render_rhythm_model_card(report), encoding="utf-8")
    assets = Path(assets_dir) if assets_dir is not None else default_assets_dir()
    assets.mkdir(parents=True, exist_ok=True)
    for name in ("rhythm.onnx", "rhythm.json", "rhythm.md"):
        shutil.copyfile(out / name, assets / name)


def render_rhythm_model_card(r: dict[str, Any]) -> str:
    """The model card (Mitchell et al. 2019 sections) of the shipped stacked rhythm model."""
    m = r["test_metrics_onnx"]
    s = r["split"]
    t = r["inference"]
    cv = r.get("cv")
    h = r["head"]

    def row(name: str, d: dict[str, Any]) -> str:
        c = d["classes"]
        ci = d["ci95"]["cinc_f1"]
        cia = d["ci95"]["f1_A"]
        return (
            f"| {name} | {d['cinc_f1']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] | "
            + f"{_fmt(c['N']['f1'])} | {_fmt(c['A']['f1'])} [{cia[0]:.3f}, {cia[1]:.3f}] | "
            + " | ".join(f"{_fmt(c[k]['f1'])}" for k in ("O", "~"))
            + f" | {_fmt(c['A']['se'])} | {_fmt(c['A']['ppv'])} | {_fmt(c['A']['auc'])} |"
        )

    per_class = [
        f"| {k} | {_fmt(m['classes'][k]['se'])} | {_fmt(m['classes'][k]['ppv'])} | "
        f"{_fmt(m['classes'][k]['f1'])} [{m['ci95']['f1_' + k][0]:.3f}, "
        f"{m['ci95']['f1_' + k][1]:.3f}] | {_fmt(m['classes'][k]['auc'])} | "
        f"{m['classes'][k]['support']} |"
        for k in CLASSES
    ]
    cm = m["confusion_matrix"]
    cm_rows = [
        f"| {CLASSES[i]} | " + " | ".join(str(v) for v in cm[i]) + " |" for i in range(len(cm))
    ]
    if cv:
        cv_lines = [
            f"Cross-validation the design comes from ({cv['date']}, commit "
            f"`{str(cv['git_revision'])[:12]}`, `{cv['command']}`; {cv['n_folds']}-fold "
            f"stratified by record on all 5,543 records, {cv['epochs']} epochs): CinC F1 "
            f"{cv['cinc_f1']:.3f} [{cv['ci95']['cinc_f1'][0]:.3f}, "
            f"{cv['ci95']['cinc_f1'][1]:.3f}], F1 N {cv['f1']['N']:.3f}, A {cv['f1']['A']:.3f} "
            f"[{cv['ci95']['f1_A'][0]:.3f}, {cv['ci95']['f1_A'][1]:.3f}], O "
            f"{cv['f1']['O']:.3f}, ~ {cv['f1']['~']:.3f}"
            + (
                f" (boosted trees on the hand features alone, same run: "
                f"{cv['hand_gbm_cinc_f1']:.3f})."
                if cv.get("hand_gbm_cinc_f1") is not None
                else "."
            ),
            "",
        ]
    else:
        cv_lines = []
    return "\n".join(
        [
            "# Model card: Heartline rhythm classifier (`rhythm.onnx`)",
            "",
            f"Built {r['date']} from commit `{r['git_revision']}` by `{r['command']}`.",
            "",
            "## Model",
            f"Stacked hybrid: two CNN-BiLSTM networks ({r['n_parameters']:,} parameters in all) "
            "and a gradient-boosted tree head, in one ONNX graph. Each network: a strided 1-D "
            "CNN over the single-lead ECG band-passed 0.5-40 Hz and resampled to "
            f"{r['fs_hz']:g} Hz, a bidirectional LSTM across the CNN's steps, masked attention "
            "+ mean + max pooling, and the 54 hand features (`HAND_FEATURE_NAMES`: 24 RR and "
            "signal features from Heartline's own R-peak detector, Dash et al. 2009, Sarkar et "
            "al. 2008, Lake & Moorman 2011, and 30 beat-morphology, P-wave, T-Q atrial-activity "
            "and spectrum features) fused before its classifier. Head: scikit-learn "
            f"HistGradientBoosting ({h['max_iter']} iterations, {h['n_trees']} trees) on "
            "[54 hand features, log of the two networks' mean class probabilities], written "
            "as an `ai.onnx.ml` TreeEnsemble (double precision) followed by Softmax. Input: "
            "30 s windows (shorter records padded and masked), 15 s apart; the networks' "
            "probabilities are averaged over a recording's windows before the head "
            "(`record_proba`); `proba` is the head on each window alone (the stream's one "
            "30 s window). Output: probabilities of N (normal sinus rhythm), A (atrial "
            "fibrillation), O (other rhythm), ~ (too noisy). ONNX (opset 18 + ai.onnx.ml 5), "
            f"{r['onnx_bytes'] / 1e6:.1f} MB, run by ONNX Runtime without torch "
            "(`heartline.edge.rhythm`).",
            "",
            "## Intended use",
            "Screening of short (9-60 s) single-lead wearable/hand-held ECG recordings for AF "
            "and other rhythms, and gating of rhythm alarms by the noise class. Not a "
            "diagnostic device; not validated on multi-lead Holter or on paced rhythms.",
            "",
            "## Training data and protocol",
            "The shared 5,543-record share of the PhysioNet/CinC Challenge 2017 training set "
            "(AliveCor, 300 Hz; labels REFERENCE-v3; Clifford et al. 2017). "
            f"Fixed split by record, {s['protocol']}: {s['n_train']} training and {s['n_val']} "
            f"early-stopping validation records (the validation carved out of the 80 %, "
            f"{s['inner_validation']}), {s['n_test']} test records "
            f"({', '.join(f'{k} {v}' for k, v in s['test_class_counts'].items())}), scored once. "
            f"The training records are split in two stratified halves ({s['halves']}); one "
            "network is trained on each half (class-weighted cross-entropy, weights (n / 4 "
            f"n_c)^{r['fit_config']['class_weight_power']}, gain and polarity augmentation, "
            f"random {r['fit_config']['train_crop_s']:g} s crops, AdamW + one-cycle, at most "
            f"{r['fit_config']['epochs']} epochs, early stopping on the validation records, "
            f"patience {r['fit_config']['patience']}); each training record's head input uses "
            "the network that did not see it (the validation records: the mean of both), and "
            "the head is fitted on those (class-weighted). The same procedure as one fold of "
            "the cross-validation. "
            f"{len(r['history'])} network epochs, {r['train_s']:.0f} s on one thread of a "
            f"shared {r['platform'].get('cpu', 'CPU')}.",
            "",
            *cv_lines,
            "## Test results (20 % split, ONNX Runtime; 95 % bootstrap CI by record)",
            "",
            "| model | CinC F1 | F1 N | F1 A | F1 O | F1 ~ | Se A | +P A | AUC A |",
            "|---|---|---|---|---|---|---|---|---|",
            row("stacked hybrid (shipped)", m),
            row("hand features + gradient boosting", r["test_metrics_hand_gbm"]),
            row("RR features + gradient boosting", r["test_metrics_rr_gbm"]),
            "",
            "CinC F1 = mean of F1(N), F1(A), F1(O), the challenge's score. Targets: CinC F1 >= "
            "0.83 and AF F1 >= 0.88. The two baselines are fitted on the same 80 % (all of it).",
            "",
            "Per class (shipped model):",
            "",
            "| class | Se | +P | F1 [95 % CI] | AUC | records |",
            "|---|---|---|---|---|---|",
            *per_class,
            "",
            "Confusion matrix (rows reference, columns predicted):",
            "",
            "| | N | A | O | ~ |",
            "|---|---|---|---|---|",
            *cm_rows,
            "",
            "## Checks and cost",
            f"- ONNX vs the PyTorch networks + scikit-learn head on the {s['n_test']} test "
            f"records: max |p difference| {r['onnx_reference_max_abs_diff']:.2e}, same label "
            f"for {100 * r['onnx_reference_label_agreement']:.1f} % of records.",
            "- The head alone (ONNX TreeEnsemble vs scikit-learn `predict_proba`) on the test "
            f"records' real head inputs: max |p difference| {r['head_onnx_sklearn_max_abs_diff']:.2e}.",
            f"- The whole torch-free path (`classify` on the raw record) vs the scored inputs, "
            f"{r['classify_vs_arrays_records']} test records: max |p difference| "
            f"{r['classify_vs_arrays_max_abs_diff']:.2e}.",
            f"- Inference per 30 s window (ONNX Runtime, 1 thread, batch 1): median "
            f"{t['ms_per_30s_window_median']:.2f} ms wall (p95 {t['ms_per_30s_window_p95']:.2f} "
            f"ms), {t['cpu_ms_per_30s_window_mean']:.2f} ms CPU; the whole torch-free path per 30 "
            f"s record (filter, resample, R-peak detector, features, model) "
            f"{t['ms_per_30s_record_median']:.1f} ms wall, {t['cpu_ms_per_30s_record_mean']:.1f} "
            f"ms CPU; load average {', '.join(f'{v:.1f}' for v in t['load_average'])} (1, 5, 15 "
            "min) on a shared machine: wall times are inflated.",
            "",
            "## Limitations",
            "- Trained and tested on one device type (AliveCor, lead I equivalent); other leads, "
            "electrode placements and patch devices are untested.",
            "- The challenge's hidden test set is not available; the 35 % of the public "
            "training set kept aside in this project is the independent test still to run.",
            "- The ~ class is small (181 records) and its labels are subjective; noisy input "
            "is also caught before the model (flat, clipped, NaN runs, fs < 100 Hz, < 9 s, "
            "no detected beat: label ~ with a message).",
            "- The design was chosen on trials read on outer fold 0 of the cross-validation "
            "(see docs/results/rhythm.md), so its cross-validated figures are slightly "
            "optimistic; the 20 % test figures here were read once, after training.",
            "",
        ]
    )
