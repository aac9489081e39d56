"""Devices (admin only): register with a fresh secret, rotate the secret, list.

A device id is also the device's broker user name, so registration refuses (409) ids that name
a broker service account (:func:`heartline.ingestion.broker.reserved_username`, including the
configured ``broker_username``) and ids that differ from an existing device's only in case.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Request, status
from sqlalchemy import func, select

from heartline.ingestion.broker import reserved_username
from heartline.service.config import ServiceSettings
from heartline.service.deps import CurrentUser, SessionDep, SettingsDep
from heartline.service.routes._common import DeviceIdPath, not_found
from heartline.service.routes.patients import device_public
from heartline.service.schemas import DeviceCreate, DeviceCredentials, DevicePublic
from heartline.service.security import hash_device_secret, new_device_secret, require_role
from heartline.storage import repository as repo
from heartline.storage import security_repository as srepo
from heartline.storage.tables import Device, Patient

router = APIRouter(prefix="/devices", tags=["devices"])


def _publish_credentials(request: Request, device_id: str, secret: str) -> None:
    """Hand a new device secret to the MQTT broker, when the app runs beside one.

    ``heartline serve`` sets ``app.state.device_credential_sink`` to a function that updates the
    broker's per-device accounts (:meth:`~heartline.ingestion.broker.MosquittoSupervisor.set_users`),
    so the same secret authenticates the device over HTTP and MQTT.
    """
    sink = getattr(request.app.state, "device_credential_sink", None)
    if sink is not None:
        sink(device_id, secret)


def service_accounts(settings: ServiceSettings) -> tuple[str, ...]:
    """Broker accounts of Heartline itself: ``broker_username`` and the user of ``broker_url``."""
    names = [settings.broker_username]
    if settings.broker_url:
        try:
            url_user = urlsplit(settings.broker_url).username
        except ValueError:
            url_user = None
        if url_user:
            names.append(url_user)
    return tuple(names)


@router.post(
    "",
    response_model=DeviceCredentials,
    status_code=status.HTTP_201_CREATED,
    responses={
        404: {"description": "no such patient"},
        409: {"description": "device exists, or its id is reserved or differs only in case"},
    },
)
def register_device(
    body: DeviceCreate,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
) -> DeviceCredentials:
    """Register a device for a patient; the response carries its secret (shown only once)."""
    require_role(user, "admin")
    reserved = reserved_username(body.id, service_accounts=service_accounts(settings))
    if reserved is not None:
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT,
            detail=f"device id {reserved} (device ids are broker user names); choose another id",
        )
    if session.get(Patient, body.patient_id) is None:
        raise not_found(f"patient {body.patient_id!r}")
    if session.get(Device, body.id) is not None:
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT,
            detail="device exists; rotate its credentials instead",
        )
    twin = session.scalar(select(Device.id).where(func.lower(Device.id) == body.id.lower()))
    if twin is not None:
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT,
            detail=f"device id {body.id!r} differs from the existing device {twin!r} only in case; "
            "choose another id",
        )
    secret = new_device_secret()
    repo.register_device(
        session,
        device_id=body.id,
        patient_id=body.patient_id,
        kind=body.kind,
        credential_hash=hash_device_secret(secret),
    )
    _publish_credentials(request, body.id, secret)
    return DeviceCredentials(device_id=body.id, secret=secret)


@router.post(
    "/{device_id}/credentials",
    response_model=DeviceCredentials,
    responses={
        404: {"description": "no such device"},
        409: {"description": "the device id is reserved for a broker service account"},
    },
)
def rotate_credentials(
    device_id: DeviceIdPath,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
) -> DeviceCredentials:
    """Issue a new secret; the old one stops working at once."""
    require_role(user, "admin")
    if session.get(Device, device_id) is None:
        raise not_found(f"device {device_id!r}")
    reserved = reserved_username(device_id, service_accounts=service_accounts(settings))
    if reserved is not None:
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT,
            detail=f"device id {reserved}: it gets no broker credentials; register a new device",
        )
    secret = new_device_secret()
    srepo.set_device_credential(
        session, device_id=device_id, credential_hash=hash_device_secret(secret)
    )
    _publish_credentials(request, device_id, secret)
    return DeviceCredentials(device_id=device_id, secret=secret)


@router.get("", response_model=list[DevicePublic])
def list_devices(user: CurrentUser, session: SessionDep) -> list[DevicePublic]:
    """Every device (admin only)."""
    require_role(user, "admin")
    return [device_public(d) for d in session.scalars(select(Device).order_by(Device.id))]
