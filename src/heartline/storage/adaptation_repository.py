"""Keyword-only functions on the adaptation tables (:mod:`heartline.storage.adaptation_tables`).

Reviews never overwrite anything: a relabelling appends a :class:`BeatReview` row and leaves
``beats.label`` (what the model said) as it was. Errors are ``LookupError`` (beats that do not
exist or belong to another patient, listed) and ``ValueError`` (labels outside N/S/V/F/Q); both
are raised before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from heartline.storage.adaptation_tables import REVIEW_LABELS, BeatReview, PatientModel
from heartline.storage.tables import Beat

__all__ = [
    "activate_model",
    "active_model",
    "add_model",
    "artefact_loader",
    "cached_artefact_loader",
    "confirmed_labels",
    "list_models",
    "review_beats",
    "rollback_to_base",
]


def review_beats(
    session: Session,
    *,
    patient_id: str,
    beat_ids: Sequence[int],
    label: str,
    actor: str,
    cluster: str | None = None,
) -> list[BeatReview]:
    """Confirm (same label) or relabel beats of one patient; one review row per beat.

    Raises ``ValueError`` for a label outside N/S/V/F/Q or no beats, ``LookupError`` naming the
    ids that are not beats of ``patient_id``; nothing is written then.
    """
    if label not in REVIEW_LABELS:
        raise ValueError(f"label must be one of {', '.join(REVIEW_LABELS)}, got {label!r}")
    ids = sorted({int(i) for i in beat_ids})
    if not ids:
        raise ValueError("beat_ids: no beats given")
    rows = session.scalars(
        select(Beat).where(Beat.id.in_(ids), Beat.patient_id == patient_id)
    ).all()
    found = {b.id: b for b in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise LookupError(f"beats {missing} are not beats of patient {patient_id!r}")
    current = confirmed_labels(session, patient_id=patient_id, beat_ids=ids)
    out = []
    for i in ids:
        r = BeatReview(
            beat_id=i,
            patient_id=patient_id,
            actor=actor[:64],
            old_label=current.get(i, found[i].label),
            new_label=label,
            cluster=cluster[:64] if cluster else None,
        )
        session.add(r)
        out.append(r)
    session.flush()
    return out


def confirmed_labels(
    session: Session, *, patient_id: str, beat_ids: Sequence[int] | None = None
) -> dict[int, str]:
    """Latest reviewed label of every reviewed beat of a patient (``beat id -> label``)."""
    latest = (
        select(BeatReview.beat_id, func.max(BeatReview.id).label("rid"))
        .where(BeatReview.patient_id == patient_id)
        .group_by(BeatReview.beat_id)
    )
    if beat_ids is not None:
        latest = latest.where(BeatReview.beat_id.in_(list(beat_ids)))
    sub = latest.subquery()
    rows = session.execute(
        select(BeatReview.beat_id, BeatReview.new_label).join(sub, BeatReview.id == sub.c.rid)
    ).all()
    return {int(b): str(lab) for b, lab in rows}


def add_model(
    session: Session,
    *,
    patient_id: str,
    method: str,
    base_sha256: str,
    artefact: bytes,
    summary: dict[str, Any],
    actor: str,
) -> PatientModel:
    """Store a new adapted model (next version) and make it the active one."""
    version = (
        session.scalar(
            select(func.max(PatientModel.version)).where(PatientModel.patient_id == patient_id)
        )
        or 0
    ) + 1
    session.execute(
        update(PatientModel).where(PatientModel.patient_id == patient_id).values(active=False)
    )
    row = PatientModel(
        patient_id=patient_id,
        version=version,
        method=method,
        base_sha256=base_sha256,
        artefact=artefact,
        summary=dict(summary, version=version),
        created_by=actor[:64],
        active=True,
    )
    session.add(row)
    session.flush()
    return row


def next_version(session: Session, *, patient_id: str) -> int:
    """The version the next adapted model of ``patient_id`` gets."""
    return (
        session.scalar(
            select(func.max(PatientModel.version)).where(PatientModel.patient_id == patient_id)
        )
        or 0
    ) + 1


def list_models(session: Session, *, patient_id: str) -> list[PatientModel]:
    """Every adapted model of a patient, newest first."""
    return list(
        session.scalars(
            select(PatientModel)
            .where(PatientModel.patient_id == patient_id)
            .order_by(PatientModel.version.desc())
        )
    )


def active_model(session: Session, *, patient_id: str) -> PatientModel | None:
    """The patient's active adapted model, or ``None`` (the base model runs)."""
    return session.scalar(
        select(PatientModel).where(
            PatientModel.patient_id == patient_id, PatientModel.active.is_(True)
        )
    )


def rollback_to_base(session: Session, *, patient_id: str) -> int:
    """Deactivate the patient's adapted models (the base model runs); returns how many were active."""
    res = session.execute(
        update(PatientModel)
        .where(PatientModel.patient_id == patient_id, PatientModel.active.is_(True))
        .values(active=False)
    )
    return int(res.rowcount or 0)


def activate_model(session: Session, *, patient_id: str, version: int) -> PatientModel:
    """Make an earlier version active again; ``LookupError`` when it does not exist."""
    row = session.scalar(
        select(PatientModel).where(
            PatientModel.patient_id == patient_id, PatientModel.version == version
        )
    )
    if row is None:
        raise LookupError(f"patient {patient_id!r} has no adapted model version {version}")
    rollback_to_base(session, patient_id=patient_id)
    row.active = True
    session.flush()
    return row


def artefact_loader(session_factory: Any) -> Any:
    """``loader(patient_id) -> (version, method, bytes) | None`` reading the active adapted model
    in its own session: what :class:`heartline.edge.adapt.PatientModelRegistry` takes, e.g.
    ``StreamProcessor(..., patient_models=PatientModelRegistry(model, artefact_loader(factory)))``.
    """

    def load(patient_id: str) -> tuple[int, str, bytes] | None:
        with session_factory() as session:
            row = active_model(session, patient_id=patient_id)
            return None if row is None else (int(row.version), str(row.method), bytes(row.artefact))

    return load


class _ActiveArtefacts:
    """``loader(patient_id)`` over a snapshot of every active adapted model's version, refreshed
    with one small query (no artefact bytes) at most every ``refresh_s``; the bytes of a version
    are read once, when it first becomes active (or active again)."""

    def __init__(self, session_factory: Any, *, refresh_s: float, clock: Any) -> None:
        self.session_factory = session_factory
        self.refresh_s = float(refresh_s)
        self.clock = clock
        self._at: float | None = None
        self._active: dict[str, tuple[int, str]] = {}
        self._bytes: dict[str, tuple[int, str, bytes]] = {}

    def _refresh(self) -> None:
        with self.session_factory() as session:
            rows = session.execute(
                select(PatientModel.patient_id, PatientModel.version, PatientModel.method).where(
                    PatientModel.active.is_(True)
                )
            ).all()
        self._active = {str(p): (int(v), str(m)) for p, v, m in rows}
        self._bytes = {p: b for p, b in self._bytes.items() if self._active.get(p) == b[:2]}

    def __call__(self, patient_id: str) -> tuple[int, str, bytes] | None:
        now = self.clock()
        if self._at is None or now - self._at >= self.refresh_s:
            self._refresh()
            self._at = now
        head = self._active.get(patient_id)
        if head is None:
            return None
        hit = self._bytes.get(patient_id)
        if hit is not None and hit[:2] == head:
            return hit
        with self.session_factory() as session:
            data = session.scalar(
                select(PatientModel.artefact).where(
                    PatientModel.patient_id == patient_id, PatientModel.version == head[0]
                )
            )
        if data is None:  # rolled back since the snapshot
            return None
        self._bytes[patient_id] = (head[0], head[1], bytes(data))
        return self._bytes[patient_id]


def cached_artefact_loader(
    session_factory: Any, *, refresh_s: float = 5.0, clock: Any = None
) -> Any:
    """Like :func:`artefact_loader` for a stream-processor worker serving many patients: one query
    per ``refresh_s`` for all patients' active versions, artefact bytes read only when a patient's
    active version changes. An adaptation or rollback made through the API reaches the worker
    within ``refresh_s`` (plus the registry's own ``refresh_s``) without a restart.
    """
    import time

    if not refresh_s >= 0:
        raise ValueError(f"refresh_s must be >= 0, got {refresh_s!r}")
    return _ActiveArtefacts(session_factory, refresh_s=refresh_s, clock=clock or time.monotonic)
