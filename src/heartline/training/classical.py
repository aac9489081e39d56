"""Classical beat classifiers on RR + morphology features (the baselines beside the deep models).

Every model implements :class:`~heartline.models.base.BeatClassifier` on the features of
:func:`heartline.features.beat_features` (online RR features and per-lead QRS morphology,
downsampled window and Daubechies wavelet coefficients; de Chazal et al. 2004,
Mondéjar-Guerra et al. 2019):

* median imputation and standard scaling fitted on the training beats only;
* class imbalance handled with balanced sample weights (``n / (k n_c)``, computed on the beats
  actually fitted);
* trained on N, S, V and F only by default: Q has 8 beats in DS1, which balanced weights would
  turn into a few hundred-fold weighted outliers; its probability column is then 0;
* seeded (``fit(..., seed=)``); validation beats (patient-grouped, from DS1) are used for
  early stopping of gradient boosting and are scored into ``run_dir/val_metrics.json``; they
  never choose hyper-parameters silently;
* ``save(dir)`` writes ``model.joblib`` (preprocessing + estimator) and ``config.json``;
  ``Class.load(dir)`` restores it.

``svm`` is an RBF support-vector machine (libsvm); as its training cost grows quadratically with
the number of beats it is fitted on at most ``max_train_beats`` beats (every beat of the
minority classes is kept and N beats are subsampled at random), and its ``predict_proba`` is a
softmax of the one-vs-rest decision values (uncalibrated scores whose arg-max is the SVM's
decision; Platt scaling would need five extra fits and re-weights the classes towards their
training priors).

References
----------
de Chazal P, O'Dwyer M, Reilly RB. Automatic classification of heartbeats using ECG morphology
and heartbeat interval features. IEEE Trans Biomed Eng 51(7):1196-1206 (2004).

Mondéjar-Guerra V, Novo J, Rouco J, Penedo MG, Ortega M. Heartbeat classification fusing
temporal and morphological information of ECGs via ensemble of classifiers. Biomed Signal
Process Control 47:41-48 (2019).

Breiman L. Random forests. Machine Learning 45:5-32 (2001).

Ke G, et al. LightGBM: a highly efficient gradient boosting decision tree. NeurIPS (2017)
(the histogram algorithm behind scikit-learn's HistGradientBoostingClassifier).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from heartline.data.aami import AAMI_CLASSES
from heartline.data.beat_set import BeatSet
from heartline.features.morphology import beat_features

__all__ = [
    "CLASSICAL_MODELS",
    "DecisionTreeBeatClassifier",
    "GradientBoostingBeatClassifier",
    "RandomForestBeatClassifier",
    "SvmBeatClassifier",
]

logger = logging.getLogger(__name__)

_MODEL_FILE = "model.joblib"
_CONFIG_FILE = "config.json"


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """``n / (k n_c)`` per sample (scikit-learn's ``class_weight="balanced"``).

    >>> balanced_weights(np.array([0, 0, 0, 1])).tolist()
    [0.6666666666666666, 0.6666666666666666, 0.6666666666666666, 2.0]
    """
    classes, inv, counts = np.unique(y, return_inverse=True, return_counts=True)
    return (y.size / (classes.size * counts))[inv]


class _FeatureClassifier:
    """Shared fit / predict / save logic; subclasses build the scikit-learn estimator."""

    name: ClassVar[str] = ""
    #: Constructor arguments of the subclass, saved in ``config.json`` after the shared ones
    #: (each is also an attribute of the same name); :meth:`load` passes them back.
    param_names: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        train_classes: tuple[str, ...] = ("N", "S", "V", "F"),
        max_train_beats: int | None = None,
    ) -> None:
        unknown = [c for c in train_classes if c not in AAMI_CLASSES]
        if unknown or len(train_classes) < 2:
            raise ValueError(f"train_classes must be >= 2 of {AAMI_CLASSES}, got {train_classes}")
        if max_train_beats is not None and int(max_train_beats) < 10:
            raise ValueError(f"max_train_beats must be >= 10 or None, got {max_train_beats}")
        self.train_classes = tuple(train_classes)
        self.max_train_beats = None if max_train_beats is None else int(max_train_beats)
        self._pre: Any = None
        self._est: Any = None
        self._classes: np.ndarray | None = None
        self.feature_names: tuple[str, ...] = ()
        self.fit_seconds: float = float("nan")

    def _params(self) -> dict[str, Any]:
        shared = {
            "train_classes": list(self.train_classes),
            "max_train_beats": self.max_train_beats,
        }
        return {**shared, **{k: getattr(self, k) for k in self.param_names}}

    # -- to override --------------------------------------------------------------------------
    def _make_estimator(self, seed: int) -> Any:
        raise NotImplementedError

    def _fit_estimator(
        self,
        est: Any,
        x: np.ndarray,
        y: np.ndarray,
        w: np.ndarray,
        x_val: np.ndarray | None,
        y_val: np.ndarray | None,
    ) -> None:
        est.fit(x, y, sample_weight=w)

    def _scores(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._est.predict_proba(x))

    # -- BeatClassifier -----------------------------------------------------------------------
    def _features(self, beats: BeatSet) -> np.ndarray:
        f = beat_features(beats)
        if self.feature_names and f.names != self.feature_names:
            raise ValueError(
                "beats give different features from the training beats "
                f"({len(f.names)} vs {len(self.feature_names)} columns): same leads and window needed"
            )
        self.feature_names = f.names
        return f.values.astype(np.float64)

    def _select(self, beats: BeatSet) -> BeatSet:
        keep = np.isin(beats.labels, [AAMI_CLASSES.index(c) for c in self.train_classes])
        return beats.subset(keep)

    def _subsample(self, y: np.ndarray, seed: int) -> np.ndarray:
        idx = np.arange(y.size)
        if self.max_train_beats is None or y.size <= self.max_train_beats:
            return idx
        rng = np.random.default_rng(seed)
        classes, counts = np.unique(y, return_counts=True)
        # water-filling: every class keeps min(n_c, quota); the quota uses up the budget
        budget = self.max_train_beats
        quota = budget // classes.size
        for _ in range(classes.size):
            used = np.minimum(counts, quota).sum()
            spare = budget - used
            open_classes = np.count_nonzero(counts > quota)
            if spare <= 0 or open_classes == 0:
                break
            quota += spare // open_classes
            if spare < open_classes:
                break
        parts = [
            rng.choice(idx[y == c], size=min(int(n), int(quota)), replace=False)
            for c, n in zip(classes, counts, strict=True)
        ]
        return np.sort(np.concatenate(parts))

    def fit(
        self, train: BeatSet, val: BeatSet, *, run_dir: Path | None = None, seed: int = 0
    ) -> None:
        """Fit on the labelled beats of ``train`` (classes in ``train_classes``)."""
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        start = time.perf_counter()
        self.feature_names = ()
        tr = self._select(train.labelled())
        if len(tr) == 0:
            raise ValueError("train has no labelled beats of the classes in train_classes")
        if np.unique(tr.labels).size < 2:
            raise ValueError("train needs beats of at least two classes")
        x = self._features(tr)
        y = tr.labels
        keep = self._subsample(y, seed)
        x, y = x[keep], y[keep]
        self._pre = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        xs = self._pre.fit_transform(x)
        x_val = y_val = None
        va = self._select(val.labelled()) if val is not None and len(val) else None
        if va is not None and len(va):
            x_val, y_val = self._pre.transform(self._features(va)), va.labels
        self._est = self._make_estimator(seed)
        self._fit_estimator(self._est, xs, y, balanced_weights(y), x_val, y_val)
        self._classes = np.asarray(self._est.classes_)
        self.fit_seconds = time.perf_counter() - start
        logger.info(
            "%s: fitted on %d beats x %d features in %.1f s",
            self.name,
            y.size,
            xs.shape[1],
            self.fit_seconds,
        )
        if run_dir is not None:
            run_dir = Path(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            info: dict[str, Any] = {
                "model": self.name,
                "params": self._params(),
                "seed": seed,
                "n_train_beats": int(y.size),
                "fit_seconds": self.fit_seconds,
            }
            if va is not None and len(va):
                from heartline.training.metrics import evaluate_predictions

                vm = evaluate_predictions(
                    va.labels, self.predict_proba(va), records=va.record, n_bootstrap=0
                )
                info["val"] = vm.to_dict()
                logger.info("%s: validation macro F1 %.3f", self.name, vm.macro_f1)
            (run_dir / "val_metrics.json").write_text(json.dumps(info, indent=2))

    def predict_proba(self, beats: BeatSet) -> np.ndarray:
        """Class scores ``(len(beats), 5)`` in :data:`AAMI_CLASSES` order, rows summing to 1."""
        if self._est is None or self._classes is None:
            raise RuntimeError(f"{self.name} is not fitted: call fit() or load() first")
        out = np.zeros((len(beats), len(AAMI_CLASSES)))
        if len(beats) == 0:
            return out
        scores = self._scores(self._pre.transform(self._features(beats)))
        out[:, self._classes] = scores
        out /= out.sum(axis=1, keepdims=True)
        return out

    def save(self, path: Path) -> None:
        """Write ``model.joblib`` and ``config.json`` into the directory ``path``."""
        import joblib
        import sklearn

        if self._est is None:
            raise RuntimeError(f"{self.name} is not fitted: nothing to save")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        joblib.dump(
            {"pre": self._pre, "est": self._est, "classes": self._classes}, path / _MODEL_FILE
        )
        config = {
            "model": self.name,
            "params": self._params(),
            "feature_names": list(self.feature_names),
            "classes": list(AAMI_CLASSES),
            "fit_seconds": self.fit_seconds,
            "sklearn_version": sklearn.__version__,
        }
        (path / _CONFIG_FILE).write_text(json.dumps(config, indent=2))

    @classmethod
    def load(cls, path: Path) -> _FeatureClassifier:
        """Restore a model written by :meth:`save` (a trusted file: joblib unpickles code)."""
        import joblib

        path = Path(path)
        config = json.loads((path / _CONFIG_FILE).read_text())
        if config.get("model") != cls.name:
            target = CLASSICAL_MODELS.get(config.get("model", ""))
            if target is None:
                raise ValueError(
                    f"{path} holds model {config.get('model')!r}, not a classical model"
                )
            cls = target
        params = dict(config["params"])
        if "train_classes" in params:
            params["train_classes"] = tuple(params["train_classes"])
        model = cls(**params)
        blob = joblib.load(path / _MODEL_FILE)
        model._pre, model._est, model._classes = (
            blob["pre"],
            blob["est"],
            np.asarray(blob["classes"]),
        )
        model.feature_names = tuple(config["feature_names"])
        model.fit_seconds = float(config.get("fit_seconds", float("nan")))
        return model


class RandomForestBeatClassifier(_FeatureClassifier):
    """Random forest (Breiman 2001) with balanced sample weights."""

    name: ClassVar[str] = "random_forest"
    param_names: ClassVar[tuple[str, ...]] = (
        "n_estimators",
        "max_features",
        "min_samples_leaf",
        "max_depth",
        "n_jobs",
    )

    def __init__(
        self,
        *,
        n_estimators: int = 150,
        max_features: str | float = "sqrt",
        min_samples_leaf: int = 2,
        max_depth: int | None = None,
        n_jobs: int = 1,
        train_classes: tuple[str, ...] = ("N", "S", "V", "F"),
        max_train_beats: int | None = None,
    ) -> None:
        super().__init__(train_classes=train_classes, max_train_beats=max_train_beats)
        self.n_estimators, self.max_features = int(n_estimators), max_features
        self.min_samples_leaf, self.max_depth, self.n_jobs = (
            int(min_samples_leaf),
            max_depth,
            int(n_jobs),
        )

    def _make_estimator(self, seed: int) -> Any:
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(
            n_estimators=self.n_estimators,
            max_features=self.max_features,
            min_samples_leaf=self.min_samples_leaf,
            max_depth=self.max_depth,
            n_jobs=self.n_jobs,
            random_state=seed,
        )


class DecisionTreeBeatClassifier(_FeatureClassifier):
    """A single CART decision tree with balanced sample weights."""

    name: ClassVar[str] = "decision_tree"
    param_names: ClassVar[tuple[str, ...]] = ("max_depth", "min_samples_leaf")

    def __init__(
        self,
        *,
        max_depth: int | None = 12,
        min_samples_leaf: int = 10,
        train_classes: tuple[str, ...] = ("N", "S", "V", "F"),
        max_train_beats: int | None = None,
    ) -> None:
        super().__init__(train_classes=train_classes, max_train_beats=max_train_beats)
        self.max_depth, self.min_samples_leaf = max_depth, int(min_samples_leaf)

    def _make_estimator(self, seed: int) -> Any:
        from sklearn.tree import DecisionTreeClassifier

        return DecisionTreeClassifier(
            max_depth=self.max_depth, min_samples_leaf=self.min_samples_leaf, random_state=seed
        )


class SvmBeatClassifier(_FeatureClassifier):
    """RBF support-vector machine (libsvm), fitted on at most ``max_train_beats`` beats."""

    name: ClassVar[str] = "svm"
    param_names: ClassVar[tuple[str, ...]] = ("c", "gamma")

    def __init__(
        self,
        *,
        c: float = 1.0,
        gamma: str | float = "scale",
        max_train_beats: int | None = 12000,
        train_classes: tuple[str, ...] = ("N", "S", "V", "F"),
    ) -> None:
        super().__init__(train_classes=train_classes, max_train_beats=max_train_beats)
        if float(c) <= 0:
            raise ValueError(f"c must be > 0, got {c}")
        self.c, self.gamma = float(c), gamma

    def _make_estimator(self, seed: int) -> Any:
        from sklearn.svm import SVC

        return SVC(
            kernel="rbf",
            C=self.c,
            gamma=self.gamma,
            decision_function_shape="ovr",
            cache_size=500,
            random_state=seed,
        )

    def _scores(self, x: np.ndarray) -> np.ndarray:
        d = np.asarray(self._est.decision_function(x), dtype=np.float64)
        if d.ndim == 1:  # two classes: one signed decision value
            d = np.stack([-d, d], axis=1)
        d = d - d.max(axis=1, keepdims=True)
        e = np.exp(d)
        return e / e.sum(axis=1, keepdims=True)


class GradientBoostingBeatClassifier(_FeatureClassifier):
    """Histogram gradient boosting (scikit-learn), early-stopped on the validation records."""

    name: ClassVar[str] = "gradient_boosting"
    param_names: ClassVar[tuple[str, ...]] = (
        "max_iter",
        "learning_rate",
        "max_leaf_nodes",
        "l2_regularization",
        "n_iter_no_change",
    )

    def __init__(
        self,
        *,
        max_iter: int = 300,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        l2_regularization: float = 0.0,
        n_iter_no_change: int = 20,
        train_classes: tuple[str, ...] = ("N", "S", "V", "F"),
        max_train_beats: int | None = None,
    ) -> None:
        super().__init__(train_classes=train_classes, max_train_beats=max_train_beats)
        self.max_iter, self.learning_rate = int(max_iter), float(learning_rate)
        self.max_leaf_nodes, self.l2_regularization = int(max_leaf_nodes), float(l2_regularization)
        self.n_iter_no_change = int(n_iter_no_change)

    def _make_estimator(self, seed: int) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            l2_regularization=self.l2_regularization,
            early_stopping=False,
            random_state=seed,
        )

    def _fit_estimator(
        self,
        est: Any,
        x: np.ndarray,
        y: np.ndarray,
        w: np.ndarray,
        x_val: np.ndarray | None,
        y_val: np.ndarray | None,
    ) -> None:
        if (
            x_val is not None
            and y_val is not None
            and np.isin(y_val, np.unique(y)).all()
            and len(y_val)
        ):
            # early stopping on the (patient-grouped) validation records, weighted as training
            w_val = np.ones(len(y_val))
            classes, counts = np.unique(y, return_counts=True)
            for c, _n in zip(classes, counts, strict=True):
                n_val = np.count_nonzero(y_val == c)
                if n_val:
                    w_val[y_val == c] = len(y_val) / (classes.size * n_val)
            est.set_params(
                early_stopping=True, n_iter_no_change=self.n_iter_no_change, scoring="loss"
            )
            est.fit(x, y, sample_weight=w, X_val=x_val, y_val=y_val, sample_weight_val=w_val)
            logger.info("%s: early stopping kept %d iterations", self.name, est.n_iter_)
        else:
            est.fit(x, y, sample_weight=w)


#: Registry of classical models: name -> class (constructible with no arguments).
CLASSICAL_MODELS: dict[str, type[_FeatureClassifier]] = {
    cls.name: cls
    for cls in (
        RandomForestBeatClassifier,
        DecisionTreeBeatClassifier,
        SvmBeatClassifier,
        GradientBoostingBeatClassifier,
    )
}
