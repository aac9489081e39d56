"""Device secrets issued by the API reach the MQTT broker (same credential on HTTP and MQTT)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from heartline.service.app import create_app


def test_register_and_rotate_hand_the_secret_to_the_broker(settings, world):
    app = create_app(settings)
    got: list[tuple[str, str]] = []
    app.state.device_credential_sink = lambda device_id, secret: got.append((device_id, secret))
    with TestClient(app) as client:
        a = world.auth("admin")
        r = client.post("/api/v1/devices", json={"id": "d9", "patient_id": "p1"}, headers=a)
        assert r.status_code == 201
        rot = client.post("/api/v1/devices/d9/credentials", headers=a)
        assert rot.status_code == 200
        # a refused request hands nothing over
        assert (
            client.post(
                "/api/v1/devices", json={"id": "d9", "patient_id": "p1"}, headers=a
            ).status_code
            == 409
        )
    assert got == [("d9", r.json()["secret"]), ("d9", rot.json()["secret"])]
