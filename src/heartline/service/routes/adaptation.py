"""Patient adaptation: beat templates, confirm/relabel beats, adapt, model versions, rollback.

Every change (review, adaptation, rollback, activation) is written to the audit log with the
acting user; reviews are also kept row by row in ``beat_reviews`` (who, when, label before and
after). A patient the caller may not see answers ``404 patient not found``, exactly as for a
patient that does not exist (as the alert routes do for foreign alerts), so ids of other
clinicians' patients cannot be probed. Only clinicians of the patient and admins may change
anything (patients: 403).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from heartline.edge.adapt import NotEnoughBeatsError, artefact_from_bytes
from heartline.service.adaptation import (
    BeatFeatureSource,
    EcgFeatureSource,
    adapt_patient,
    beat_templates,
)
from heartline.service.deps import CurrentUser, SessionDep
from heartline.service.routes._common import (
    PatientIdPath,
    authorize_or_hide,
    not_found,
    resolve_window,
    unprocessable,
)
from heartline.service.routes.patients import DAY_S, End, Start
from heartline.service.schemas import JSON_INTEGER, JsonInt
from heartline.service.security import audit_action, audit_read, require_role
from heartline.storage import adaptation_repository as arepo
from heartline.storage import repository as repo
from heartline.storage.adaptation_tables import REVIEW_LABELS, PatientModel
from heartline.storage.security_tables import User
from heartline.storage.tables import Patient

__all__ = ["get_feature_source", "router"]

router = APIRouter(tags=["adaptation"])
ReviewLabel = Literal["N", "S", "V", "F", "Q"]
_NOT_FOUND = {404: {"description": "no such patient, or one you may not see"}}
#: Most beats one review request may name.
MAX_REVIEW_BEATS = 20_000


class BeatReviewCreate(BaseModel):
    """Confirm or relabel beats: one beat, or a whole template (its ``beat_ids`` and name)."""

    model_config = ConfigDict(extra="forbid")
    # ids up to 2**53: JSON numbers above it do not survive a round trip through a double
    beat_ids: list[Annotated[int, Field(ge=1, le=2**53), JSON_INTEGER]] = Field(
        min_length=1, max_length=MAX_REVIEW_BEATS
    )
    label: ReviewLabel
    cluster: str | None = Field(default=None, max_length=64)


class BeatReviewPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    beat_id: int
    time: datetime
    actor: str
    old_label: str | None
    new_label: str
    cluster: str | None


class TemplatePublic(BaseModel):
    cluster: str
    count: int
    label_counts: dict[str, int]
    confirmed_counts: dict[str, int]
    representative_beat_id: int
    mean_rr_ratio: float
    beat_ids: list[int]
    median_mv: list[float]
    median_fs_hz: float | None
    median_start_s: float
    median_n_beats: int
    median_lead: str | None


class AdaptationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Literal["prototypes"] = "prototypes"
    min_per_class: JsonInt = Field(default=3, ge=1, le=1000)


class PatientModelPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    version: int
    method: str
    base_sha256: str
    created_by: str
    created_at: datetime
    active: bool
    summary: dict[str, Any]


class RollbackCreate(BaseModel):
    """``version``: make that adapted model active again; ``null``: the base model."""

    model_config = ConfigDict(extra="forbid")
    version: Annotated[int | None, Field(ge=1), JSON_INTEGER] = None


class ModelStatePublic(BaseModel):
    patient_id: str
    active_version: int | None
    models: list[PatientModelPublic]
    #: Set when the active adapted model cannot be read (corrupt): the processors run the base
    #: model for this patient until another version is adapted or activated.
    notice: str | None = None


def get_feature_source(request: Request) -> BeatFeatureSource:
    """Features of stored beats from the stored ECG and the shipped model (loaded once per app;
    tests override this dependency)."""
    src = getattr(request.app.state, "adaptation_features", None)
    if src is None:
        from heartline.edge.runtime import OnnxBeatClassifier
        from heartline.edge.shipped import shipped_model_path

        src = EcgFeatureSource(OnnxBeatClassifier(shipped_model_path()))
        request.app.state.adaptation_features = src
    return src


FeatureSourceDep = Annotated[BeatFeatureSource, Depends(get_feature_source)]


def _patient(session: Session, *, user: User, patient_id: str, change: bool = False) -> Patient:
    """The patient, or the same 404 whether it is missing or not the caller's.

    ``change``: the caller is about to change the patient's reviews or models, which only
    clinicians and admins may do (patients: 403, checked first).
    """
    if change:
        require_role(user, "admin", "clinician")
    authorize_or_hide(session, user=user, patient_id=patient_id, hidden=not_found("patient"))
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise not_found("patient")
    return patient


@router.get(
    "/patients/{patient_id}/beat-templates",
    response_model=list[TemplatePublic],
    responses=_NOT_FOUND,
)
def list_templates(
    patient_id: PatientIdPath,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    start: Start = None,
    end: End = None,
    n_clusters: Annotated[int, Query(ge=1, le=64)] = 8,
) -> list[TemplatePublic]:
    """Templates (groups of similar beats) in ``[start, end)`` (default: the last hour; at most
    one day), largest first, with counts, labels, confirmations and every beat id."""
    _patient(session, user=user, patient_id=patient_id)
    start, end = resolve_window(start, end, default_s=3600.0, max_s=DAY_S)
    beats = repo.beats_between(session, patient_id=patient_id, start=start, stop=end)
    audit_read(
        session, user=user, request=request, resource="beat-templates", patient_id=patient_id
    )
    return [
        TemplatePublic(**t.__dict__)
        for t in beat_templates(session, beats=beats, patient_id=patient_id, n_clusters=n_clusters)
    ]


@router.post(
    "/patients/{patient_id}/beat-reviews",
    response_model=list[BeatReviewPublic],
    status_code=status.HTTP_201_CREATED,
    responses={
        403: {"description": "patients cannot review beats"},
        404: {"description": "no such patient (or not yours), or beats that are not its (listed)"},
        422: {"description": "a label outside N/S/V/F/Q, no beats, unknown fields"},
    },
)
def review(
    patient_id: PatientIdPath,
    body: BeatReviewCreate,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
) -> list[BeatReviewPublic]:
    """Confirm (same label) or relabel beats; every beat gets a review row, the request an audit row."""
    _patient(session, user=user, patient_id=patient_id, change=True)
    try:
        rows = arepo.review_beats(
            session,
            patient_id=patient_id,
            beat_ids=body.beat_ids,
            label=body.label,
            actor=user.username,
            cluster=body.cluster,
        )
    except LookupError as exc:  # missing or another patient's beats: 404, naming them
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    except ValueError as exc:
        raise unprocessable(str(exc), loc=("body", "label")) from None
    audit_action(
        session,
        user=user,
        request=request,
        action="relabel" if any(r.old_label != r.new_label for r in rows) else "confirm",
        resource=f"beats:{len(rows)}:{body.label}" + (f":{body.cluster}" if body.cluster else ""),
        patient_id=patient_id,
    )
    return [BeatReviewPublic.model_validate(r) for r in rows]


@router.get(
    "/patients/{patient_id}/beat-reviews",
    response_model=list[BeatReviewPublic],
    responses=_NOT_FOUND,
)
def list_reviews(
    patient_id: PatientIdPath, request: Request, user: CurrentUser, session: SessionDep
) -> list[BeatReviewPublic]:
    """Every review of the patient's beats, oldest first (the full history, nothing overwritten)."""
    from sqlalchemy import select

    from heartline.storage.adaptation_tables import BeatReview

    _patient(session, user=user, patient_id=patient_id)
    audit_read(session, user=user, request=request, resource="beat-reviews", patient_id=patient_id)
    rows = session.scalars(
        select(BeatReview).where(BeatReview.patient_id == patient_id).order_by(BeatReview.id)
    ).all()
    return [BeatReviewPublic.model_validate(r) for r in rows]


def _state(session: Session, patient_id: str) -> ModelStatePublic:
    models = arepo.list_models(session, patient_id=patient_id)
    active = next((m for m in models if m.active), None)
    notice = None
    if active is not None:
        try:
            artefact_from_bytes(bytes(active.artefact), method=active.method)
        except ValueError as exc:
            notice = (
                f"adapted model v{active.version} cannot be read ({exc}); the base model runs "
                "for this patient: adapt again, or activate another version"
            )
    return ModelStatePublic(
        patient_id=patient_id,
        active_version=None if active is None else active.version,
        models=[PatientModelPublic.model_validate(m) for m in models],
        notice=notice,
    )


@router.post(
    "/patients/{patient_id}/adaptation",
    response_model=PatientModelPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        **_NOT_FOUND,
        403: {"description": "patients cannot adapt models"},
        409: {"description": "too few reviewed beats (``missing``: class -> beats still needed)"},
    },
)
def adapt(
    patient_id: PatientIdPath,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    features_of: FeatureSourceDep,
    body: AdaptationCreate | None = None,
) -> PatientModelPublic:
    """Adapt the model to the patient's reviewed beats; the new version becomes active."""
    _patient(session, user=user, patient_id=patient_id, change=True)
    body = body or AdaptationCreate()
    src_model = getattr(features_of, "model", None)
    if src_model is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="no model to adapt")
    try:
        row, _summary = adapt_patient(
            session,
            patient_id=patient_id,
            model=src_model,
            features_of=features_of,
            actor=user.username,
            min_per_class=body.min_per_class,
        )
    except NotEnoughBeatsError as exc:  # a valid request the patient's reviews cannot serve yet
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail={"msg": str(exc), "missing": exc.missing},
        ) from None
    except ValueError as exc:
        raise unprocessable(str(exc), loc=("body",)) from None
    audit_action(
        session,
        user=user,
        request=request,
        action="adapt",
        resource=f"model:v{row.version}",
        patient_id=patient_id,
    )
    return PatientModelPublic.model_validate(row)


@router.get("/patients/{patient_id}/models", response_model=ModelStatePublic, responses=_NOT_FOUND)
def list_patient_models(
    patient_id: PatientIdPath, request: Request, user: CurrentUser, session: SessionDep
) -> ModelStatePublic:
    """The patient's adapted model versions and which one is active (``null``: the base model)."""
    _patient(session, user=user, patient_id=patient_id)
    audit_read(
        session, user=user, request=request, resource="patient-models", patient_id=patient_id
    )
    return _state(session, patient_id)


@router.post(
    "/patients/{patient_id}/models/rollback",
    response_model=ModelStatePublic,
    responses={
        403: {"description": "patients cannot roll back"},
        404: {"description": "no such patient (or not yours), or no such version"},
    },
)
def rollback(
    patient_id: PatientIdPath,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    body: RollbackCreate | None = None,
) -> ModelStatePublic:
    """Run the base model again (``version`` null) or re-activate an earlier adapted version."""
    _patient(session, user=user, patient_id=patient_id, change=True)
    body = body or RollbackCreate()
    if body.version is None:
        arepo.rollback_to_base(session, patient_id=patient_id)
        what = "base"
    else:
        try:
            arepo.activate_model(session, patient_id=patient_id, version=body.version)
        except LookupError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
        what = f"v{body.version}"
    audit_action(
        session,
        user=user,
        request=request,
        action="rollback",
        resource=f"model:{what}",
        patient_id=patient_id,
    )
    return _state(session, patient_id)


def stored_artefact(session: Session, patient_id: str) -> tuple[int, str, bytes] | None:
    """Loader for :class:`heartline.edge.adapt.PatientModelRegistry` from the database."""
    row: PatientModel | None = arepo.active_model(session, patient_id=patient_id)
    return None if row is None else (row.version, row.method, row.artefact)


__all__ += ["REVIEW_LABELS", "stored_artefact"]
