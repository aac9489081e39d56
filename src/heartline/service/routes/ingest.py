"""``POST /api/v1/ingest/frames``: the HTTP twin of MQTT ingestion for one device frame.

The body is the MQTT frame JSON (:mod:`heartline.ingestion.payloads`), validated by
:func:`~heartline.ingestion.payloads.parse_frame`; a refusal is HTTP 422 with the
``FrameRejected`` reason. The device authenticates with HTTP Basic (device id + secret) and may
only write its own stream (403 otherwise). Storage is idempotent on ``(device_id, seq)``
(:func:`~heartline.storage.repository.store_frame`): a replay answers 200 with ``stored=false``,
a new frame 201.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status

from heartline.ingestion.payloads import MAX_FRAME_BYTES, FrameRejected, parse_frame
from heartline.service.deps import CurrentDevice, SessionDep
from heartline.service.schemas import FrameRejectedError, IngestResult
from heartline.storage import repository as repo

router = APIRouter(prefix="/ingest", tags=["ingestion"])

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "A device frame, as published over MQTT (heartline.ingestion.payloads.Frame).",
                    "required": [
                        "device_id",
                        "seq",
                        "start_time_s",
                        "fs_hz",
                        "duration_s",
                        "lead_names",
                        "adc_bits",
                        "adc_gain",
                        "adc_baseline",
                        "ecg",
                    ],
                }
            }
        },
    }
}


async def _read_limited(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)


@router.post(
    "/frames",
    response_model=IngestResult,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_BODY,
    responses={
        200: {"description": "replay of a stored frame", "model": IngestResult},
        401: {"description": "bad device credentials"},
        403: {"description": "frame of another device"},
        409: {"description": "device not assigned to a patient"},
        422: {"description": "frame rejected (reason)", "model": FrameRejectedError},
    },
)
async def ingest_frame(
    request: Request, response: Response, device: CurrentDevice, session: SessionDep
) -> IngestResult:
    """Store one frame of the authenticated device (idempotent on ``(device_id, seq)``)."""
    raw = await _read_limited(request, MAX_FRAME_BYTES)
    try:
        frame = parse_frame(raw)
    except FrameRejected as exc:
        raise HTTPException(
            status_code=422, detail={"reason": exc.reason, "detail": exc.detail}
        ) from None
    if frame.device_id != device.id:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN, detail="a device may only write its own stream"
        )
    try:
        stored = repo.store_frame(session, frame=frame, payload_bytes=len(raw))
    except repo.UnknownDeviceError as exc:
        raise HTTPException(status_code=status.HTTP_409_CONFLICT, detail=str(exc)) from None
    if not stored:
        response.status_code = status.HTTP_200_OK
    return IngestResult(device_id=frame.device_id, seq=frame.seq, stored=stored)
