"""Which shipped beat classifier reads a record, and on which of its leads (no torch).

The shipped beat models and the leads each was trained on are listed in
``assets/models/beat_models.json``: the two-lead hybrid (MLII + V1/V2/V4/V5, as in the MIT-BIH
Arrhythmia Database; Moody and Mark 2001) and the single-lead hybrid trained on MLII only.
:func:`select_beat_model` chooses from a record's lead names:

* two leads, MLII (or II) and one of the two-lead model's second leads -> the two-lead model;
* one lead -> the MLII model on it (a lead not named MLII/II is used *as* MLII, and the choice
  says so);
* more leads (a 12-lead record) -> the MLII model on lead II;
* otherwise a :class:`LeadMismatchError` naming the record's leads and what the models need.

A choice is never silent: :attr:`ModelChoice.note` says which lead was used for what, and
``heartline classify`` prints it and writes the lead into its output.

>>> canonical_lead("Lead II"), canonical_lead("ml2"), canonical_lead("aVR")
('II', 'II', 'AVR')
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from heartline.errors import SignalError

__all__ = [
    "BeatModelSpec",
    "LeadMismatchError",
    "ModelChoice",
    "beat_model_specs",
    "canonical_lead",
    "select_beat_model",
    "spec_for_onnx",
]

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets" / "models"
REGISTRY_FILE = "beat_models.json"
#: Names of the modified / standard limb lead II, all read as the MLII the models were trained on.
_LEAD_II = frozenset({"II", "MLII", "ML2", "MII"})


class LeadMismatchError(SignalError):
    """A record's leads do not fit any beat model; the message names both sides."""


def canonical_lead(name: str) -> str:
    """Upper-case lead name without ``"lead"``/spaces; every MLII/II spelling gives ``"II"``."""
    s = re.sub(r"[\s_\-]+", "", str(name)).upper()
    s = re.sub(r"^(LEAD|ECG)(?=.)", "", s)
    return "II" if s in _LEAD_II else s


@dataclass(frozen=True)
class BeatModelSpec:
    """A shipped beat model and the leads it expects.

    Attributes
    ----------
    name : str
        Model id (file stem of the ONNX model).
    onnx_path : pathlib.Path
    card_path : pathlib.Path or None
    leads : tuple of tuple of str
        Per model input, the lead it was trained on first, then the names accepted for it.
    trained_on : str
        The training data in words.
    trained_fs_hz : float
        Sampling rate of the training records (beat windows are resampled to the model's
        128 samples whatever the record's rate).
    """

    name: str
    onnx_path: Path
    card_path: Path | None
    leads: tuple[tuple[str, ...], ...]
    trained_on: str
    trained_fs_hz: float

    @property
    def n_leads(self) -> int:
        return len(self.leads)

    @property
    def installed(self) -> bool:
        return self.onnx_path.is_file()

    def needs(self) -> str:
        """What this model needs, in words (``"MLII (or II)"``...)."""
        parts = []
        for accepted in self.leads:
            first, rest = accepted[0], [a for a in accepted[1:] if canonical_lead(a) != "II"]
            if canonical_lead(first) == "II":
                parts.append("MLII (or II)")
            else:
                parts.append(" / ".join([first, *rest]))
        return " + ".join(parts)


@functools.lru_cache(maxsize=4)
def _load_specs(folder: str) -> tuple[BeatModelSpec, ...]:
    path = Path(folder) / REGISTRY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: beat model registry missing from this installation")
    raw = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for m in raw["models"]:
        out.append(
            BeatModelSpec(
                name=str(m["name"]),
                onnx_path=Path(folder) / m["onnx"],
                card_path=(Path(folder) / m["card"]) if m.get("card") else None,
                leads=tuple(tuple(str(x) for x in slot) for slot in m["leads"]),
                trained_on=str(m.get("trained_on", "")),
                trained_fs_hz=float(m.get("trained_fs_hz", 360.0)),
            )
        )
    return tuple(out)


def beat_model_specs(folder: str | os.PathLike[str] | None = None) -> tuple[BeatModelSpec, ...]:
    """The beat models listed in ``beat_models.json`` (installed or not)."""
    return _load_specs(str(Path(folder) if folder is not None else ASSETS_DIR))


def spec_for_onnx(path: str | os.PathLike[str], n_leads: int) -> BeatModelSpec:
    """The spec of a user-given ONNX model: the shipped spec of the same file name, else one
    built from its lead count (1: MLII; 2: MLII + the two-lead model's second leads)."""
    path = Path(path)
    specs = beat_model_specs()
    for s in specs:
        if s.onnx_path.name == path.name and s.n_leads == n_leads:
            return BeatModelSpec(s.name, path, None, s.leads, s.trained_on, s.trained_fs_hz)
    by_n = {s.n_leads: s for s in specs}
    if n_leads not in by_n:
        raise LeadMismatchError(
            f"{path}: a beat model with {n_leads} leads; Heartline knows how to feed 1 (MLII) or "
            "2 (MLII + V1/V2/V4/V5)"
        )
    base = by_n[n_leads]
    return BeatModelSpec(path.stem, path, None, base.leads, "user-given model", base.trained_fs_hz)


@dataclass(frozen=True)
class ModelChoice:
    """The model chosen for a record and the columns it reads.

    Attributes
    ----------
    spec : BeatModelSpec
    columns : tuple of int
        Columns of the record's signal, in the model's input order.
    leads_used : tuple of str
        The record's names of those columns.
    note : str
        The choice in words (printed by the CLI, kept in :class:`heartline.api.BeatTable`).
    """

    spec: BeatModelSpec
    columns: tuple[int, ...]
    leads_used: tuple[str, ...]
    note: str


def _needs_all(specs: Sequence[BeatModelSpec]) -> str:
    return "; ".join(f"{s.name} needs {s.needs()}" for s in specs)


def select_beat_model(
    lead_names: Sequence[str],
    *,
    lead: str | None = None,
    specs: Sequence[BeatModelSpec] | None = None,
    source: str = "record",
) -> ModelChoice:
    """Choose the beat model and lead(s) for a record with ``lead_names``.

    Parameters
    ----------
    lead_names : sequence of str
        The record's leads, one per signal column.
    lead : str, optional
        Use this lead alone, with the single-lead model (it is fed as MLII; the note says so).
    specs : sequence of BeatModelSpec, optional
        Candidate models (default: the shipped ones that are installed). Only one candidate
        (a user-given ``--model``) restricts the choice to it.
    source : str
        Name of the record in messages.

    Raises
    ------
    LeadMismatchError
        No model fits: the message names the record's leads and what each model needs.
    """
    names = [str(n) for n in lead_names]
    canon = [canonical_lead(n) for n in names]
    if specs is None:
        specs = [s for s in beat_model_specs() if s.installed]
    specs = list(specs)
    if not specs:
        raise FileNotFoundError("no shipped beat classifier is installed: pass a model")
    by_n: dict[int, BeatModelSpec] = {}
    for s in specs:
        by_n.setdefault(s.n_leads, s)
    single, double = by_n.get(1), by_n.get(2)
    has = f"{source} has lead(s) {names}"

    def _single(col: int, why: str) -> ModelChoice:
        if single is None:
            raise LeadMismatchError(
                f"{has}; {why}, but no single-lead beat model is available ({_needs_all(specs)})"
            )
        as_what = "" if canon[col] == "II" else f" as MLII (the lead {single.name} was trained on)"
        return ModelChoice(
            single, (col,), (names[col],), f"lead {names[col]}{as_what} -> {single.name}: {why}"
        )

    if lead is not None:
        if lead not in names:
            matches = [i for i, c in enumerate(canon) if c == canonical_lead(lead)]
            if not matches:
                raise LeadMismatchError(f"lead {lead!r} is not in {source}; it has {names}")
            col = matches[0]
        else:
            col = names.index(lead)
        return _single(col, "lead chosen by the caller")
    if not names:
        raise LeadMismatchError(f"{source} has no leads")
    ii = [i for i, c in enumerate(canon) if c == "II"]
    if len(names) == 1:
        return _single(0, "single-lead record")
    if not ii:
        raise LeadMismatchError(
            f"{has}; none is MLII/II. {_needs_all(specs)}. Choose a lead explicitly "
            "(lead=NAME, or --lead NAME) to classify it as if it were MLII"
        )
    i = ii[0]
    if len(names) == 2 and double is not None:
        j = 1 - i
        second = {canonical_lead(a) for a in double.leads[1]}
        if canon[j] in second:
            return ModelChoice(
                double,
                (i, j),
                (names[i], names[j]),
                f"leads {names[i]} + {names[j]} -> {double.name} (two-lead model)",
            )
        return _single(
            i, f"second lead {names[j]} is not one {double.name} was trained on ({double.needs()})"
        )
    if len(names) == 2:
        return _single(i, "no two-lead model available")
    return _single(i, f"{len(names)}-lead record, lead {names[i]} chosen")
