"""Tables of patient adaptation: clinicians' beat reviews and per-patient adapted models.

``beat_reviews`` is append-only: every confirmation or relabelling of a beat is a new row (who,
when, the label before and after, and the cluster when a whole template was relabelled); the
beat's confirmed label is its latest review. ``patient_models`` holds every adapted model
artefact of a patient with its version (1, 2, ...); at most one is ``active``, none active means
the base model runs (rollback). Beats keep the version of the model that labelled them in
``beats.model_version`` (migration ``0008_adaptation``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from heartline.storage.tables import Base, utcnow

__all__ = ["REVIEW_LABELS", "BeatReview", "PatientModel"]

#: Labels a clinician may give a beat (AAMI classes).
REVIEW_LABELS: tuple[str, ...] = ("N", "S", "V", "F", "Q")

_BigId = BigInteger().with_variant(Integer(), "sqlite")


class BeatReview(Base):
    """One confirmation (``new_label == old_label``) or relabelling of one beat."""

    __tablename__ = "beat_reviews"
    __table_args__ = (
        Index("ix_beat_reviews_patient_time", "patient_id", "time"),
        Index("ix_beat_reviews_beat", "beat_id"),
        CheckConstraint("new_label IN ('N', 'S', 'V', 'F', 'Q')", name="label_valid"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    beat_id: Mapped[int] = mapped_column(ForeignKey("beats.id", ondelete="CASCADE"))
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    time: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    old_label: Mapped[str | None] = mapped_column(String(8))
    new_label: Mapped[str] = mapped_column(String(8))
    cluster: Mapped[str | None] = mapped_column(String(64))


class PatientModel(Base):
    """One adapted model artefact of a patient (``.npz`` prototypes or ``.onnx`` head bytes)."""

    __tablename__ = "patient_models"
    __table_args__ = (
        UniqueConstraint("patient_id", "version"),
        Index("ix_patient_models_patient_active", "patient_id", "active"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    version: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(32))
    base_sha256: Mapped[str] = mapped_column(String(64))
    artefact: Mapped[bytes] = mapped_column(LargeBinary)
    summary: Mapped[dict[str, Any]]
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
