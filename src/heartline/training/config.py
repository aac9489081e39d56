"""Typed experiment configurations, loaded from and saved to TOML.

An experiment is three small frozen pydantic dataclasses: :class:`DataConfig` (how beats are
built), :class:`ModelConfig` (registry name and architecture parameters) and :class:`TrainConfig`
(optimiser, early stopping, class imbalance, seed), grouped in :class:`ExperimentConfig`.
Pydantic validates them (``extra="forbid"``, strict types: an integer where a number is expected
is fine, a string or a boolean is not): unknown keys anywhere are an error naming the key and the
file (never silently ignored), and so are values of the wrong type. Being dataclasses, they are
built positionally or by keyword and copied with :func:`dataclasses.replace` (which validates
again).

Example TOML::

    name = "hybrid-k8"

    [data]
    leads = [0, 1]
    window_len = 128

    [model]
    name = "hybrid"

    [model.params]
    context_k = 8

    [train]
    lr = 0.001
    imbalance = "weighted_loss"

>>> cfg = config_from_dict({"name": "x", "model": {"name": "cnn"}, "train": {"max_epochs": 3}})
>>> cfg.train.max_epochs, cfg.train.lr, cfg.train.monitor
(3, 0.001, 'val_macro_f1')
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
)
from pydantic.dataclasses import dataclass

__all__ = [
    "IMBALANCE_MODES",
    "LR_SCHEDULES",
    "MONITORS",
    "DataConfig",
    "ExperimentConfig",
    "ModelConfig",
    "TrainConfig",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "save_config",
]

#: How class imbalance is handled: inverse-frequency weights in the loss, inverse-frequency
#: sampling of training chunks, or nothing.
IMBALANCE_MODES: tuple[str, ...] = ("weighted_loss", "weighted_sampling", "none")
#: Early-stopping criteria: validation macro-F1 (higher is better) or validation loss (lower).
MONITORS: tuple[str, ...] = ("val_macro_f1", "val_loss", "none")
#: Learning-rate schedules of :class:`TrainConfig` (``lr_schedule``).
LR_SCHEDULES: tuple[str, ...] = ("constant", "plateau")

#: Pydantic settings of every config section: unknown keys are errors. Values are not coerced
#: (the field types below are strict: ``"64"`` or ``2.5`` is not an integer, ``true`` is not a
#: number, an integer is a number).
_STRICT = ConfigDict(extra="forbid")
Num = Annotated[float, Strict()]


def _list_to_tuple(value: Any) -> Any:
    """TOML arrays arrive as lists; the configs keep tuples (immutable, hashable)."""
    return tuple(value) if isinstance(value, list) else value


IntTuple = Annotated[tuple[StrictInt, ...], BeforeValidator(_list_to_tuple)]


@dataclass(frozen=True, config=_STRICT)
class DataConfig:
    """How beats are built (passed to ``heartline.data.beat_dataset.build_beat_set``).

    Attributes
    ----------
    leads : tuple of int
        Record channels used (MIT-BIH: 0 = MLII, 1 = V1/V2/V4/V5).
    window_len : int
        Samples per beat window after resampling (0.25 s before to 0.45 s after the R-peak).
    rpeaks : str
        ``"annotated"`` (reference beat positions) or a detector name.
    validation_seed : int or None
        ``None``: the fixed default validation records inside DS1; an int draws them at random
        (see :func:`heartline.data.splits.validation_records`).
    hold_out_validation : bool
        ``False`` trains on all DS1 records with no validation records (a refit with a number of
        epochs chosen beforehand, e.g. by ``heartline select``); needs ``train.monitor = "none"``.
    """

    leads: IntTuple = (0, 1)
    window_len: StrictInt = 128
    rpeaks: StrictStr = "annotated"
    validation_seed: StrictInt | None = None
    hold_out_validation: StrictBool = True

    def __post_init__(self) -> None:
        if not self.leads or any(lead < 0 for lead in self.leads):
            raise ValueError(f"data.leads must be non-negative channel indices, got {self.leads}")
        if self.window_len < 8:
            raise ValueError(f"data.window_len must be >= 8, got {self.window_len}")


@dataclass(frozen=True, config=_STRICT)
class ModelConfig:
    """Registry name and architecture parameters of the model.

    ``params`` are keyword arguments of the model's constructor; they are checked against it by
    :func:`heartline.training.registry.check_model_params` when an :class:`ExperimentConfig` is built.

    One of them also decides how the beats are built: ``template_features = true`` (hybrid
    models, :class:`~heartline.models.hybrid.HybridNet`; default false) makes the network take
    the patient-adaptive template columns after the RR columns, and the training code builds
    the beats with them (``build_beat_set(..., template_features=True)``); see
    :attr:`template_features`. Left out or false, nothing differs from before the option.
    """

    name: StrictStr = "hybrid"
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def template_features(self) -> bool:
        """Whether the model takes the template columns (``params.template_features``).

        >>> ModelConfig(params={"template_features": True}).template_features, ModelConfig().template_features
        (True, False)
        """
        value = self.params.get("template_features", False)
        if not isinstance(value, bool):
            raise TypeError(f"model.params.template_features must be true or false, got {value!r}")
        return value


@dataclass(frozen=True, config=_STRICT)
class TrainConfig:
    """Optimisation, early stopping and reproducibility settings of deep models.

    Attributes
    ----------
    lr : float
        Adam learning rate.
    batch_size : int
        Target beats per mini-batch.
    dropout : float
        Dropout probability used by the network.
    weight_decay : float
        L2 penalty (Adam ``weight_decay``).
    max_epochs : int
        Upper bound on epochs.
    patience : int
        Early stopping: epochs without improvement of ``monitor`` before stopping.
    monitor : {"val_macro_f1", "val_loss", "none"}
        Early-stopping and checkpoint criterion, computed on the validation records only.
        ``"none"``: no early stopping; ``max_epochs`` epochs (or the time budget) are trained and
        the last weights (their average with ``ema_decay``) are kept; validation beats, if any,
        are only scored for the history.
    time_budget_s : float or None
        Optional wall-clock budget for training; stops before an epoch that would exceed it.
    imbalance : {"weighted_loss", "weighted_sampling", "none"}
        Class-imbalance handling.
    class_weight_power : float
        Class weight = (inverse class frequency) ** power, normalised so that the weighted mean
        over training beats is 1; 1.0 is plain inverse frequency, 0.5 a softened version.
    max_class_weight : float
        Upper clip on class weights (the few Q beats of DS1 would otherwise dominate).
    chunk_len : int
        Training batches are made of runs of ``chunk_len`` consecutive beats of a record, so that
        sequence models encode each context beat once per batch; 1 gives independent beats.
    grad_clip : float
        Gradient-norm clip (0 disables).
    augment : bool
        Random per-beat, per-lead amplitude scaling (x0.8-1.25), baseline offset, Gaussian noise
        and a time shift of up to 3 samples on training windows, so that morphology learned on
        the training patients transfers better to unseen ones.
    seed : int
        Seed of torch and numpy.
    num_threads : int
        ``torch.set_num_threads`` during training.
    ema_decay : float or None
        Keep an exponential moving average of the weights (and batch-norm statistics), updated
        after every optimiser step with this decay, and validate, select and return the averaged
        network instead of the raw one (Polyak & Juditsky 1992; Izmailov et al. 2018, "Averaging
        weights leads to wider optima and better generalization"). ``None``: off. The average
        smooths the epoch-to-epoch swings that make early stopping on a few validation patients
        noisy.
    lr_schedule : {"constant", "plateau"}
        ``"constant"``: Adam at ``lr`` throughout. ``"plateau"``: multiply the learning rate by
        ``lr_factor`` whenever the monitored validation quantity has not improved for
        ``lr_patience`` epochs, down to ``min_lr`` (``torch.optim.lr_scheduler.ReduceLROnPlateau``),
        so that late epochs take smaller steps around the optimum instead of swinging across it
        (Goodfellow, Bengio & Courville 2016, section 8.3.1). Needs a validation monitor.
    lr_factor : float
        Factor of each reduction, in (0, 1).
    lr_patience : int
        Epochs without improvement before a reduction; keep it below ``patience`` so that the
        smaller rate gets epochs to act before early stopping.
    min_lr : float
        Floor of the learning rate.
    """

    lr: Num = 1e-3
    batch_size: StrictInt = 64
    dropout: Num = 0.3
    weight_decay: Num = 1e-4
    max_epochs: StrictInt = 40
    patience: StrictInt = 10
    monitor: Literal["val_macro_f1", "val_loss", "none"] = "val_macro_f1"
    time_budget_s: Num | None = None
    imbalance: Literal["weighted_loss", "weighted_sampling", "none"] = "weighted_loss"
    class_weight_power: Num = 1.0
    max_class_weight: Num = 50.0
    chunk_len: StrictInt = 16
    grad_clip: Num = 5.0
    augment: StrictBool = False
    seed: StrictInt = 0
    num_threads: StrictInt = 1
    ema_decay: Num | None = None
    lr_schedule: Literal["constant", "plateau"] = "constant"
    lr_factor: Num = 0.5
    lr_patience: StrictInt = 2
    min_lr: Num = 1e-5

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        if self.batch_size < 1:
            raise ValueError(f"train.batch_size must be >= 1, got {self.batch_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"train.dropout must be in [0, 1), got {self.dropout}")
        if self.weight_decay < 0:
            raise ValueError(f"train.weight_decay must be >= 0, got {self.weight_decay}")
        if self.max_epochs < 1:
            raise ValueError(f"train.max_epochs must be >= 1, got {self.max_epochs}")
        if self.patience < 1:
            raise ValueError(f"train.patience must be >= 1, got {self.patience}")
        if self.monitor not in MONITORS:
            raise ValueError(f"train.monitor must be one of {list(MONITORS)}, got {self.monitor!r}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError(f"train.time_budget_s must be > 0, got {self.time_budget_s}")
        if self.imbalance not in IMBALANCE_MODES:
            raise ValueError(
                f"train.imbalance must be one of {list(IMBALANCE_MODES)}, got {self.imbalance!r}"
            )
        if self.class_weight_power < 0 or self.max_class_weight < 1:
            raise ValueError(
                "train.class_weight_power must be >= 0 and train.max_class_weight >= 1"
            )
        if self.chunk_len < 1:
            raise ValueError(f"train.chunk_len must be >= 1, got {self.chunk_len}")
        if self.num_threads < 1:
            raise ValueError(f"train.num_threads must be >= 1, got {self.num_threads}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"train.ema_decay must be in (0, 1) or None, got {self.ema_decay}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"train.lr_schedule must be one of {list(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )
        if not 0.0 < self.lr_factor < 1.0:
            raise ValueError(f"train.lr_factor must be in (0, 1), got {self.lr_factor}")
        if self.lr_patience < 1:
            raise ValueError(f"train.lr_patience must be >= 1, got {self.lr_patience}")
        if self.min_lr < 0 or (self.lr_schedule == "plateau" and self.min_lr > self.lr):
            raise ValueError(f"train.min_lr must be in [0, lr], got {self.min_lr}")
        if self.lr_schedule == "plateau" and self.monitor == "none":
            raise ValueError(
                'train.lr_schedule = "plateau" steps on the monitored validation quantity; '
                'it cannot be used with train.monitor = "none" (fixed epochs)'
            )


@dataclass(frozen=True, config=_STRICT)
class ExperimentConfig:
    """One experiment: a name plus data, model and training settings."""

    name: StrictStr = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"name must be a non-empty string without '/', got {self.name!r}")
        from heartline.training.registry import check_model_params

        check_model_params(self.model.name, self.model.params)
        _ = self.model.template_features  # a bool or an error
        if not self.data.hold_out_validation and self.train.monitor != "none":
            raise ValueError(
                "data.hold_out_validation = false trains without validation records: "
                f'set train.monitor = "none" (fixed epochs), not {self.train.monitor!r}'
            )


_SECTIONS: dict[str, type] = {}  # filled below: section name -> config class


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _translate(exc: ValidationError) -> Exception:
    """One clear ``ValueError`` / ``TypeError`` from pydantic's errors, naming the key."""
    errors = exc.errors()
    extra = [e for e in errors if e["type"] in ("unexpected_keyword_argument", "extra_forbidden")]
    if extra:
        section = tuple(extra[0]["loc"][:-1])
        names = sorted(str(e["loc"][-1]) for e in extra if tuple(e["loc"][:-1]) == section)
        cls = _SECTIONS.get(_where(section), ExperimentConfig)
        valid = sorted(f.name for f in dataclasses.fields(cls))
        return ValueError(
            f"unknown key(s) {names} in [{_where(section) or 'top level'}]; valid keys: {valid}"
        )
    err = errors[0]
    where = _where(tuple(err["loc"]))
    if err["type"] == "value_error":
        return ValueError(str(err["ctx"]["error"]))
    if err["type"] == "literal_error":
        return ValueError(f"{where} must be one of {err['ctx']['expected']}, got {err['input']!r}")
    if err["type"].endswith("_type") or err["type"].startswith("dataclass"):
        msg = err["msg"][:1].lower() + err["msg"][1:]
        return TypeError(f"{where or 'config'}: {msg}, got {err['input']!r}")
    return ValueError(f"{where or 'config'}: {err['msg']}")


def config_from_dict(data: dict[str, Any]) -> ExperimentConfig:
    """Build and validate an :class:`ExperimentConfig` from nested dicts (as TOML loads them).

    Raises
    ------
    ValueError
        On unknown keys (the message lists the valid ones) or invalid values.
    TypeError
        On values of the wrong type.
    """
    if not isinstance(data, dict):
        raise TypeError(f"config must be a table, got {type(data).__name__}")
    try:
        return ExperimentConfig(**data)
    except ValidationError as exc:
        raise _translate(exc) from None


def _drop_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_drop_none(v) for v in obj]
    return obj


_SECTIONS.update(
    {"": ExperimentConfig, "data": DataConfig, "model": ModelConfig, "train": TrainConfig}
)


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """Plain nested dicts (tuples as lists, ``None`` values left out: TOML has no null)."""
    return _drop_none(dataclasses.asdict(config))


def load_config(path: str | Path) -> ExperimentConfig:
    """Read an experiment config from a TOML file (unknown keys are an error)."""
    path = Path(path)
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    try:
        return config_from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


def save_config(config: ExperimentConfig, path: str | Path) -> Path:
    """Write ``config`` as TOML to ``path`` and return the path (needs ``tomli-w``, in the
    ``train`` extra)."""
    import tomli_w

    path = Path(path)
    path.write_text(tomli_w.dumps(config_to_dict(config)), encoding="utf-8")
    return path
