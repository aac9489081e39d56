"""API routers (thin: validation and authorisation here, storage in repository functions)."""

from heartline.service.routes import alerts, auth, devices, health, ingest, patients, users

__all__ = ["alerts", "auth", "devices", "health", "ingest", "patients", "users"]
