"""Property-based API fuzzing with schemathesis against ``/openapi.json``: no 5xx, ever.

One test per operation, up to 20 generated requests each (hypothesis, derandomised), authorised
as the admin (who may reach every route) on a seeded SQLite database. Responses must also
match their documented schema.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from heartline.service import create_app
from heartline.storage.migrations import upgrade_database

from .conftest import make_settings, seed_world


def _operations() -> list[tuple[str, str]]:
    # create_app builds no engine, so the spec can be read at collection time.
    spec = create_app(make_settings("sqlite://", Path("/nonexistent"))).openapi()
    return [(m.upper(), p) for p, ops in spec["paths"].items() for m in ops]


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{d / 'heartline.db'}"
    upgrade_database(url)
    s = make_settings(url, d)
    world = seed_world(s, n_frames=3)
    app = create_app(s)
    return schemathesis.openapi.from_asgi("/openapi.json", app), world.auth("admin")


@pytest.mark.parametrize(("method", "path"), _operations())
def test_api_never_answers_5xx(fuzz_target, method, path):
    schema, headers = fuzz_target
    operation = schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=20,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case):
        response = case.call(headers=headers)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    run()
