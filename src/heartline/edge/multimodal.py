"""Torch-free multimodal diagnosis (12-lead ECG + patient data) with ONNX Runtime.

Runs the stacked multimodal hybrid shipped in ``heartline/assets/models/`` (``multimodal.json``,
``multimodal_net*.onnx``, ``multimodal_head.onnx``; model card ``MODEL_CARD_multimodal.md``),
written by :func:`heartline.training.multimodal_ship.ship_multimodal`. Needs numpy, scipy and
onnxruntime only. For one record, :meth:`MultimodalModel.diagnose`:

1. checks the input (``fs``, shape, lead names, length, NaN runs, amplitude units), reorders the
   leads by name to the model's order (I, II, III, aVR, aVL, aVF, V1-V6), resamples to the
   model's rate (100 Hz) and keeps the first 10 s;
2. turns the patient data (age, sex, height, weight; any may be missing) into the networks'
   inputs (standardised values + presence masks + the over-89 flag, with the training folds'
   scaling) and the heads' inputs (values, NaN where missing);
3. computes the 270 ECG features (:func:`heartline.features.ecg12.record_features`, the training
   code itself), runs each network on the 2.5 s crops (mean over crops, then over networks),
   and the boosted heads on [network log-odds, features, metadata];
4. returns a :class:`heartline.edge.diagnosis.MultimodalDiagnosis` (probabilities, validation
   thresholds, modality attention, model name and version, which metadata were used), ready for
   :func:`heartline.fhir.diagnosis.diagnosis_report`.

Bad input raises ``ValueError`` with a message naming the problem (missing leads by name, a rate
below 100 Hz, a record shorter than 10 s, a NaN run longer than 50 ms, amplitudes that are not
mV, unknown or out-of-range patient data).

>>> import numpy as np
>>> model = MultimodalModel()  # the shipped model
>>> x = np.zeros((500, 12))
>>> model.diagnose(x, fs=100, lead_names=model.leads)
Traceback (most recent call last):
...
ValueError: record is 5.0 s long; the model needs 10 s (1000 samples at 100 Hz)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from heartline.edge.diagnosis import MultimodalDiagnosis
from heartline.errors import HeartlineWarning
from heartline.features.ecg12 import record_features

__all__ = [
    "METADATA_KEYS",
    "MIN_FS_HZ",
    "MODEL_JSON",
    "MultimodalModel",
    "PatientMetadata",
    "diagnose",
    "head_inputs",
    "model_version",
    "patient_metadata",
    "shipped_model",
    "shipped_multimodal_model_dir",
]

MODEL_JSON = "multimodal.json"
CROP_SAMPLES_KEY = "crop_samples"
#: Lowest input rate accepted (the model's own rate; upsampling would invent the QRS detail).
MIN_FS_HZ: float = 100.0
#: NaN/inf runs up to this long are interpolated (with a note); longer ones are refused.
MAX_NAN_GAP_S: float = 0.05
#: Patient data keys (and accepted aliases) -> metadata column.
METADATA_KEYS: dict[str, str] = {
    "age": "age_y",
    "age_y": "age_y",
    "sex": "sex_male",
    "height": "height_cm",
    "height_cm": "height_cm",
    "weight": "weight_kg",
    "weight_kg": "weight_kg",
}
#: PTB-XL's code for an age above 89 years, and the age it stands for (as in training).
AGE_OVER_89_CODE = 300
AGE_OVER_89_VALUE_Y = 90.0
_RANGES = {"age_y": (0.0, 120.0), "height_cm": (50.0, 250.0), "weight_kg": (2.0, 300.0)}
_UNITS = {"age_y": "years", "height_cm": "cm", "weight_kg": "kg"}
#: Keys of multimodal.json that define the run-time behaviour (hashed into the version).
_RUNTIME_KEYS = (
    "name",
    "format",
    "classes",
    "thresholds",
    "fs_hz",
    "leads",
    "input_samples",
    CROP_SAMPLES_KEY,
    "crop_stride_samples",
    "units",
    "ecg_scaler",
    "metadata",
    "head",
)
_ASSETS = Path(__file__).resolve().parent.parent / "assets" / "models"


def shipped_multimodal_model_dir() -> Path:
    """Folder of the shipped multimodal model (``heartline/assets/models``)."""
    return _ASSETS


def head_inputs(
    net_proba: np.ndarray, feats: np.ndarray, meta_values: np.ndarray, *, clip: float = 1e-4
) -> np.ndarray:
    """The boosted heads' inputs ``[log-odds of the networks' mean probabilities (clipped to
    [clip, 1 - clip]), ECG features, metadata values]``, float64 ``(N, C + 270 + 5)``.

    The same computation as the benchmark's stacked hybrid (``_logit`` then concatenation).
    """
    q = np.clip(net_proba, clip, 1.0 - clip)
    return np.concatenate([np.log(q / (1.0 - q)), feats, meta_values], axis=1)


def model_version(folder: str | os.PathLike[str], spec: Mapping[str, Any]) -> str:
    """Content hash (12 hex digits) of a model's ONNX files and the run-time keys of its JSON."""
    h = hashlib.sha256()
    files = [n["file"] for n in spec["networks"]] + [spec["head"]["file"]]
    for f in files:
        h.update(f.encode())
        h.update((Path(folder) / f).read_bytes())
    h.update(json.dumps({k: spec[k] for k in _RUNTIME_KEYS}, sort_keys=True).encode())
    return h.hexdigest()[:12]


# -- patient data -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PatientMetadata:
    """Patient data as the model takes them.

    Attributes
    ----------
    values : numpy.ndarray
        ``(5,)`` float32: age (y), sex (1 male, 0 female), height (cm), weight (kg), BMI; NaN
        where missing (BMI needs height and weight).
    present : numpy.ndarray
        ``(5,)`` bool masks.
    age_over_89 : bool
        The age was above 89 (or PTB-XL's code 300) and enters as 90 with this flag.
    used : dict
        ``{"age": bool, "sex": bool, "height": bool, "weight": bool}``.
    notes : tuple of str
    """

    values: np.ndarray
    present: np.ndarray
    age_over_89: bool
    used: dict[str, bool]
    notes: tuple[str, ...] = ()


def _number(value: Any, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"metadata[{key!r}] must be a number, got {value!r}")
    v = float(value)
    return None if math.isnan(v) else v


def _sex_male(value: Any) -> float | None:
    """1.0 male, 0.0 female; PTB-XL's numeric codes are 0 = male, 1 = female."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        s = value.strip().lower()
        if s in ("m", "male", "man"):
            return 1.0
        if s in ("f", "female", "woman"):
            return 0.0
        if s in ("", "unknown", "u", "nan"):
            return None
    elif not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating):
        if float(value) == 0.0:
            return 1.0
        if float(value) == 1.0:
            return 0.0
    raise ValueError(
        f"metadata['sex'] must be 'male'/'female' ('m'/'f') or PTB-XL's code 0 (male) / "
        f"1 (female), got {value!r}"
    )


def patient_metadata(metadata: Mapping[str, Any] | None) -> PatientMetadata:
    """Check and convert patient data (``age``, ``sex``, ``height``, ``weight``; any may be
    missing or ``None``) to the model's columns, as :func:`heartline.data.ptbxl.parse_metadata`
    does for training.

    An age above 89 years, or PTB-XL's code 300 ("over 89"), becomes 90 with the over-89 flag
    (PTB-XL de-identifies every age above 89 this way, so the model never saw exact ages above
    89). Values outside 0-120 y, 50-250 cm, 2-300 kg raise ``ValueError`` (entry errors, not
    missing data), as does an unknown key.

    >>> m = patient_metadata({"age": 300, "sex": "female", "height": None})
    >>> m.values[:2].tolist(), m.age_over_89, m.used
    ([90.0, 0.0], True, {'age': True, 'sex': True, 'height': False, 'weight': False})
    """
    metadata = dict(metadata or {})
    unknown = sorted(k for k in metadata if k not in METADATA_KEYS)
    if unknown:
        raise ValueError(
            f"unknown metadata key(s) {unknown}; valid: age (years), sex, height (cm), weight (kg)"
        )
    got: dict[str, Any] = {}
    for k, v in metadata.items():
        col = METADATA_KEYS[k]
        if got.get(col) is not None and v is not None:
            raise ValueError(f"metadata gives {col} twice ({k!r} and an alias)")
        if v is not None:
            got[col] = v
    notes: list[str] = []
    over = False
    age = _number(got.get("age_y"), "age")
    if age is not None:
        if age == AGE_OVER_89_CODE or 89.0 < age <= _RANGES["age_y"][1]:
            notes.append(
                f"age {age:g} entered as {AGE_OVER_89_VALUE_Y:g} with the over-89 flag "
                "(PTB-XL codes every age above 89 as 300)"
            )
            age, over = AGE_OVER_89_VALUE_Y, True
    vals = {"age_y": age, "sex_male": _sex_male(got.get("sex_male"))}
    for col in ("height_cm", "weight_kg"):
        vals[col] = _number(got.get(col), col.split("_")[0])
    for col, (lo, hi) in _RANGES.items():
        v = vals[col]
        if v is not None and not lo <= v <= hi:
            name = col.split("_")[0]
            extra = " (or 300, PTB-XL's code for over 89)" if col == "age_y" else ""
            raise ValueError(
                f"metadata[{name!r}] = {v:g} {_UNITS[col]} is outside {lo:g}-{hi:g}{extra}"
            )

    def arr(v: float | None) -> float:
        return np.nan if v is None else v

    age_a, sex_a = arr(vals["age_y"]), arr(vals["sex_male"])
    height, weight = arr(vals["height_cm"]), arr(vals["weight_kg"])
    bmi = weight / (height / 100.0) ** 2
    values = np.array([age_a, sex_a, height, weight, bmi], dtype=np.float64).astype(np.float32)
    present = np.isfinite(values)
    used = {
        "age": bool(present[0]),
        "sex": bool(present[1]),
        "height": bool(present[2]),
        "weight": bool(present[3]),
    }
    missing = [k for k, u in used.items() if not u]
    if missing:
        notes.append("missing patient data (masked): " + ", ".join(missing))
    return PatientMetadata(values, present, over, used, tuple(notes))


# -- the model ----------------------------------------------------------------------------------
def _longest_run(mask: np.ndarray) -> int:
    if not mask.any():
        return 0
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return int((np.flatnonzero(d == -1) - np.flatnonzero(d == 1)).max())


def _norm_lead(name: str) -> str:
    return str(name).strip().upper()


def _crop_starts(n_samples: int, crop: int, stride: int) -> list[int]:
    # heartline.training.multimodal._crop_starts (the crops the networks were scored on)
    if crop >= n_samples:
        return [0]
    starts = list(range(0, n_samples - crop + 1, stride))
    if starts[-1] != n_samples - crop:
        starts.append(n_samples - crop)
    return starts


class MultimodalModel:
    """The stacked multimodal hybrid run by ONNX Runtime.

    Parameters
    ----------
    path : path, optional
        Folder holding ``multimodal.json`` and the ONNX files it names, or the JSON file itself;
        the shipped model when omitted.
    num_threads : int
        ONNX Runtime intra-op threads (1: one core).

    Raises
    ------
    FileNotFoundError
        No ``multimodal.json`` there.
    ValueError
        The files do not match the version recorded in the JSON (a changed or mixed artefact).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, num_threads: int = 1) -> None:
        import onnxruntime as ort

        p = Path(path) if path is not None else shipped_multimodal_model_dir()
        spec_path = p if p.suffix == ".json" else p / MODEL_JSON
        if not spec_path.is_file():
            raise FileNotFoundError(
                f"multimodal model {spec_path} not found; it is written by "
                "`heartline train multimodal --out DIR` (see docs/multimodal.md)"
            )
        self.folder = spec_path.parent
        self.spec: dict[str, Any] = json.loads(spec_path.read_text())
        s = self.spec
        version = model_version(self.folder, s)
        if version != s.get("version"):
            raise ValueError(
                f"{spec_path}: the model files hash to {version}, the JSON says "
                f"{s.get('version')!r}; the artefact was changed or mixed with another"
            )
        self.name: str = s["name"]
        self.version: str = s["version"]
        self.classes: tuple[str, ...] = tuple(s["classes"])
        self.thresholds: dict[str, float] = {c: float(s["thresholds"][c]) for c in self.classes}
        self.fs_hz = float(s["fs_hz"])
        self.leads: tuple[str, ...] = tuple(s["leads"])
        self.input_samples = int(s["input_samples"])
        self.crop = int(s[CROP_SAMPLES_KEY])
        self.stride = int(s["crop_stride_samples"])
        self._ecg_mean = np.asarray(s["ecg_scaler"]["mean"], dtype=np.float32)
        self._ecg_std = np.asarray(s["ecg_scaler"]["std"], dtype=np.float32)
        self._meta_mean = np.asarray(s["metadata"]["mean"], dtype=np.float32)
        self._meta_std = np.asarray(s["metadata"]["std"], dtype=np.float32)
        self._clip = float(s["head"]["logit_clip"])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(num_threads)
        opts.inter_op_num_threads = 1
        self._nets = [
            ort.InferenceSession(
                str(self.folder / n["file"]), sess_options=opts, providers=["CPUExecutionProvider"]
            )
            for n in s["networks"]
        ]
        self._head = ort.InferenceSession(
            str(self.folder / s["head"]["file"]),
            sess_options=opts,
            providers=["CPUExecutionProvider"],
        )

    @property
    def input_s(self) -> float:
        """Record length the model reads (s)."""
        return self.input_samples / self.fs_hz

    # ------------------------------------------------------------------ input checks
    def prepare_signals(
        self, signals: Any, *, fs: float, lead_names: Sequence[str]
    ) -> tuple[np.ndarray, list[str]]:
        """``(n_samples, n_leads)`` mV at ``fs`` -> the model's ``(12, 1000)`` float32 at 100 Hz.

        Reorders the leads by name (case-insensitive: ``aVR`` = ``AVR``), keeps the first 10 s,
        interpolates NaN gaps up to 50 ms and resamples (polyphase, anti-aliased). Returns the
        signal and notes on what was done; raises ``ValueError`` for input it cannot use.
        """
        try:
            fs = float(fs)
        except (TypeError, ValueError):
            raise ValueError(f"fs must be a sampling rate in Hz, got {fs!r}") from None
        if not math.isfinite(fs) or fs <= 0:
            raise ValueError(f"fs must be a finite sampling rate > 0 Hz, got {fs!r}")
        if fs < MIN_FS_HZ:
            raise ValueError(
                f"fs={fs:g} Hz is below the {MIN_FS_HZ:g} Hz the model needs (the 12-lead "
                "model reads 100 Hz; a lower rate would have to invent the QRS detail)"
            )
        try:
            x = np.asarray(signals, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("signals must be a numeric (n_samples, n_leads) array") from None
        names = [_norm_lead(n) for n in lead_names]
        if x.ndim != 2:
            raise ValueError(f"signals must be 2-D (n_samples, n_leads), got shape {x.shape}")
        if x.shape[1] != len(names):
            hint = " (transposed? pass (n_samples, n_leads))" if x.shape[0] == len(names) else ""
            raise ValueError(
                f"signals has {x.shape[1]} columns but lead_names has {len(names)} names{hint}"
            )
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"lead_names repeats {dup}")
        want = [_norm_lead(n) for n in self.leads]
        missing = [lead for lead, w in zip(self.leads, want, strict=True) if w not in names]
        if missing:
            raise ValueError(
                f"missing lead(s) {missing}; the model needs the 12 standard leads "
                f"{list(self.leads)} (got {list(lead_names)}); missing leads are never zero-filled"
            )
        x = x[:, [names.index(w) for w in want]]
        notes: list[str] = []
        need = math.ceil(self.input_s * fs - 1e-6)
        dur = x.shape[0] / fs
        if x.shape[0] < need:
            raise ValueError(
                f"record is {dur:.1f} s long; the model needs {self.input_s:g} s "
                f"({self.input_samples} samples at {self.fs_hz:g} Hz)"
            )
        if x.shape[0] > need:
            x = x[:need]
            notes.append(f"record is {dur:.1f} s long: its first {self.input_s:g} s were used")
        bad = ~np.isfinite(x)
        if bad.any():
            for j, lead in enumerate(self.leads):
                run = _longest_run(bad[:, j])
                if run == 0:
                    continue
                if run / fs > MAX_NAN_GAP_S or run == x.shape[0]:
                    raise ValueError(
                        f"lead {lead} has a run of {run} NaN/inf samples ({1000 * run / fs:.0f} ms); "
                        f"gaps longer than {1000 * MAX_NAN_GAP_S:.0f} ms are not repaired"
                    )
                good = np.flatnonzero(~bad[:, j])
                x[bad[:, j], j] = np.interp(np.flatnonzero(bad[:, j]), good, x[good, j])
            notes.append(f"interpolated {int(bad.sum())} NaN/inf samples (gaps <= 50 ms)")
        amp = float(np.percentile(np.abs(x), 99))
        if amp > 20.0:
            raise ValueError(
                f"amplitudes reach {amp:.0f} (99th percentile): the model takes mV; convert "
                "from µV (divide by 1000) or ADC units first"
            )
        if fs != self.fs_hz:
            from scipy.signal import resample_poly

            ratio = Fraction(self.fs_hz / fs).limit_denominator(10_000)
            # float32 before resampling, as the training data (records500 -> 100 Hz) were
            x = resample_poly(
                x.astype(np.float32), ratio.numerator, ratio.denominator, axis=0
            ).astype(np.float32)
            notes.append(f"resampled {fs:g} -> {self.fs_hz:g} Hz")
        x = np.ascontiguousarray(x[: self.input_samples].T, dtype=np.float32)
        if x.shape[1] < self.input_samples:  # pragma: no cover - rounding of odd rates
            raise ValueError(
                f"record gives {x.shape[1]} samples at {self.fs_hz:g} Hz after resampling, "
                f"needs {self.input_samples}"
            )
        return x, notes

    # ------------------------------------------------------------------ batched model
    def meta_inputs(
        self, values: np.ndarray, present: np.ndarray, age_over_89: np.ndarray
    ) -> np.ndarray:
        """The networks' ``(N, 11)`` metadata inputs (training's ``MetaScaler.transform``)."""
        z = (values - self._meta_mean) / self._meta_std
        z = np.where(present, z, 0.0)
        return np.concatenate(
            [z, present.astype(np.float32), np.asarray(age_over_89)[:, None].astype(np.float32)],
            axis=1,
        ).astype(np.float32)

    def predict_networks(
        self, ecg_z: np.ndarray, meta_in: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean probabilities ``(N, C)`` and modality weights ``(N, 2)`` of the networks over
        the crops of per-lead standardised ``(N, 12, T)`` records."""
        starts = _crop_starts(ecg_z.shape[2], self.crop, self.stride)
        p = np.zeros((ecg_z.shape[0], len(self.classes)))
        w = np.zeros((ecg_z.shape[0], 2))
        for sess in self._nets:
            p_sum = np.zeros((ecg_z.shape[0], len(self.classes)), dtype=np.float32)
            w_sum = np.zeros((ecg_z.shape[0], 2), dtype=np.float32)
            for s in starts:
                crop = np.ascontiguousarray(ecg_z[:, :, s : s + self.crop])
                pc, wc = sess.run(["proba", "modality_weights"], {"ecg": crop, "meta": meta_in})
                p_sum = p_sum + pc
                w_sum = w_sum + wc
            p += (p_sum / len(starts)) / len(self._nets)
            w += (w_sum / len(starts)) / len(self._nets)
        return p, w

    def predict_batch(
        self,
        signals: np.ndarray,
        meta_values: np.ndarray,
        meta_present: np.ndarray,
        age_over_89: np.ndarray,
        *,
        feats: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities ``(N, C)`` and modality weights ``(N, 2)`` of prepared records.

        ``signals`` ``(N, 12, 1000)`` float32 mV at 100 Hz in the model's lead order;
        ``meta_values`` ``(N, 5)`` with NaN where missing, ``meta_present`` ``(N, 5)``,
        ``age_over_89`` ``(N,)`` (the arrays of :class:`heartline.data.ptbxl.PtbxlMetadata`);
        ``feats``: their :func:`~heartline.features.ecg12.record_features` when already computed.
        """
        signals = np.asarray(signals, dtype=np.float32)
        ecg_z = ((signals - self._ecg_mean[None, :, None]) / self._ecg_std[None, :, None]).astype(
            np.float32
        )
        meta_in = self.meta_inputs(meta_values, meta_present, age_over_89)
        p_net, w = self.predict_networks(ecg_z, meta_in)
        if feats is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", HeartlineWarning)
                feats, _ = record_features(signals, fs=self.fs_hz)
        x = head_inputs(p_net, feats, meta_values, clip=self._clip)
        proba = self._head.run(["proba"], {"x": np.ascontiguousarray(x, dtype=np.float64)})[0]
        return np.asarray(proba, dtype=np.float64), w

    # ------------------------------------------------------------------ one record
    def diagnose(
        self,
        signals: Any,
        *,
        fs: float,
        lead_names: Sequence[str],
        metadata: Mapping[str, Any] | None = None,
        patient_id: str = "unknown",
        record_id: str = "record",
        time: dt.datetime | None = None,
    ) -> MultimodalDiagnosis:
        """Diagnose one 12-lead record (see the module docstring).

        Parameters
        ----------
        signals : array_like
            ``(n_samples, n_leads)`` in mV, at least 10 s.
        fs : float
            Sampling rate in Hz (>= 100).
        lead_names : sequence of str
            One name per column; the 12 standard leads must be among them (any order).
        metadata : mapping, optional
            ``age`` (years; 300 = PTB-XL's over 89), ``sex`` ('male'/'female' or PTB-XL's
            0 male / 1 female), ``height`` (cm), ``weight`` (kg); missing keys or ``None`` are
            masked (``metadata_used`` says which were used).
        patient_id, record_id : str
            For the FHIR resources.
        time : datetime, optional
            When the ECG was recorded (timezone-aware); now (UTC) when unknown.
        """
        x, notes = self.prepare_signals(signals, fs=fs, lead_names=lead_names)
        meta = patient_metadata(metadata)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", HeartlineWarning)
            feats, _ = record_features(x[None], fs=self.fs_hz)
        if not np.isfinite(feats[0, :6]).all():
            notes.append("fewer than 3 heartbeats detected: the beat features are missing")
        p, w = self.predict_batch(
            x[None],
            meta.values[None],
            meta.present[None],
            np.asarray([meta.age_over_89]),
            feats=feats,
        )
        return MultimodalDiagnosis(
            patient_id=patient_id,
            record_id=record_id,
            time=time or dt.datetime.now(dt.UTC),
            probabilities={c: float(p[0, k]) for k, c in enumerate(self.classes)},
            model_name=self.name,
            model_version=self.version,
            thresholds=dict(self.thresholds),
            modality_weights={"ecg": float(w[0, 0]), "metadata": float(w[0, 1])},
            metadata_used=dict(meta.used),
            notes=tuple(notes) + meta.notes,
        )


_SHIPPED: dict[str, MultimodalModel] = {}


def shipped_model() -> MultimodalModel:
    """The shipped model, loaded once per process."""
    if "shipped" not in _SHIPPED:
        _SHIPPED["shipped"] = MultimodalModel()
    return _SHIPPED["shipped"]


def diagnose(
    signals: Any,
    *,
    fs: float,
    lead_names: Sequence[str],
    metadata: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> MultimodalDiagnosis:
    """:meth:`MultimodalModel.diagnose` with the shipped model (loaded once per process)."""
    return shipped_model().diagnose(
        signals, fs=fs, lead_names=lead_names, metadata=metadata, **kwargs
    )
