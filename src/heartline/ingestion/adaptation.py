"""Per-patient adapted models for stream-processor workers, read from the database.

Workers are separate processes (``heartline worker``, started by ``heartline serve``), so the
per-patient model registry cannot be handed to them as an object: the processor options carry a
JSON-friendly spec, ``"patient_models": {"refresh_s": 5.0}`` (or ``true``), and each worker
builds its own :class:`~heartline.edge.adapt.PatientModelRegistry` over the database with
:func:`resolve_patient_models`. Adaptations and rollbacks made through the API reach every
worker within ``refresh_s`` seconds without a restart (one query per ``refresh_s`` for all
patients' active versions; artefact bytes are read only when a version changes).
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["DEFAULT_REFRESH_S", "patient_models_spec", "resolve_patient_models"]

log = logging.getLogger(__name__)

#: Seconds between checks of the patients' active adapted models.
DEFAULT_REFRESH_S = 5.0


def patient_models_spec(value: Any) -> float | None:
    """The refresh period of a ``"patient_models"`` option, or ``None`` when adaptation is off.

    ``true`` -> :data:`DEFAULT_REFRESH_S`; ``{"refresh_s": x}`` -> ``x``; ``false``/``None`` ->
    off. Anything else is a ``ValueError`` naming the option.

    >>> patient_models_spec(True), patient_models_spec({"refresh_s": 1}), patient_models_spec(None)
    (5.0, 1.0, None)
    """
    if value is None or value is False:
        return None
    if value is True:
        return DEFAULT_REFRESH_S
    if isinstance(value, dict) and set(value) <= {"refresh_s"}:
        refresh = float(value.get("refresh_s", DEFAULT_REFRESH_S))
        if refresh >= 0:
            return refresh
    raise ValueError(
        f'patient_models must be true, false or {{"refresh_s": seconds >= 0}}, got {value!r}'
    )


def resolve_patient_models(
    options: dict[str, Any], *, model: Any, database_url: str
) -> tuple[Any, dict[str, Any]]:
    """Processor ``(model, options)`` with a ``"patient_models"`` spec replaced by a registry.

    ``model`` (a path or an :class:`~heartline.edge.runtime.OnnxBeatClassifier`) is loaded once
    and shared by the processor and the registry. A model without the split form (no encoder)
    cannot be adapted: the option is dropped with a warning and the base model runs. A registry
    object already in ``options`` is kept as it is.
    """
    opts = dict(options)
    value = opts.get("patient_models")
    if value is not None and not isinstance(value, (bool, dict)):
        return model, opts  # already a registry
    refresh_s = patient_models_spec(opts.pop("patient_models", None))
    if refresh_s is None:
        return model, opts
    from heartline.edge.adapt import PatientModelRegistry
    from heartline.edge.runtime import OnnxBeatClassifier
    from heartline.storage import make_engine, make_session_factory
    from heartline.storage.adaptation_repository import cached_artefact_loader

    base = model if isinstance(model, OnnxBeatClassifier) else OnnxBeatClassifier(model)
    if not base.has_split:
        log.warning(
            "model %s has no split form (encoder): patient adaptation is off", base.path.name
        )
        return base, opts
    factory = make_session_factory(make_engine(database_url))
    loader = cached_artefact_loader(factory, refresh_s=refresh_s)
    opts["patient_models"] = PatientModelRegistry(base, loader, refresh_s=refresh_s)
    return base, opts
