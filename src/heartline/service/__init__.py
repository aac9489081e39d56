"""The Heartline HTTP service: FastAPI app, security, routes, FHIR endpoints and the dashboard.

Nothing is built at import time: :func:`create_app` takes (or loads) a
:class:`~heartline.service.config.ServiceSettings` and builds the engine lazily behind
dependencies that tests override.
"""

from heartline.service.app import create_app, run_api
from heartline.service.config import ServiceSettings, load_service_settings
from heartline.service.seed import DemoCredentials, seed_demo

__all__ = [
    "DemoCredentials",
    "ServiceSettings",
    "create_app",
    "load_service_settings",
    "run_api",
    "seed_demo",
]
