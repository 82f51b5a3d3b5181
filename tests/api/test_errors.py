"""Every error row of SPEC §4 this server owns: status, envelope code and message."""

from __future__ import annotations

import pytest

from tests.conftest import Api

pytestmark = pytest.mark.anyio


def _envelope(response: object, status: int, code: int | None = None) -> str:
    body = response.json()  # type: ignore[attr-defined]
    assert response.status_code == status, body  # type: ignore[attr-defined]
    assert set(body) == {"code", "message", "data"}
    assert body["code"] == (code if code is not None else status)
    assert isinstance(body["message"], str) and body["message"]
    message: str = body["message"]
    return message


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "nonsense"},
        {"Authorization": "Bearer "},
        {"Authorization": "ig_0000000000000000_wrong"},
    ],
)
async def test_missing_or_unknown_key_is_401(api: Api, headers: dict[str, str]) -> None:
    response = await api.client.post(
        "/api/v3/kwaivgi/kling-image-o1/text-to-image", json={"prompt": "x"}, headers=headers
    )
    assert "missing or invalid" in _envelope(response, 401)


async def test_right_key_id_with_wrong_secret_is_401(api: Api) -> None:
    key_id = api.key.split("_")[1]
    response = await api.client.get(
        "/api/v3/predictions", headers={"Authorization": f"ig_{key_id}_not-the-secret"}
    )
    _envelope(response, 401)


async def test_revoked_key_is_401(api: Api) -> None:
    new = await api.services.accounts.create_key("to-revoke")  # type: ignore[attr-defined]
    headers = {"Authorization": new.token}
    assert (await api.client.get("/api/v3/predictions", headers=headers)).status_code == 200
    await api.services.accounts.revoke(new.record.id)  # type: ignore[attr-defined]
    _envelope(await api.client.get("/api/v3/predictions", headers=headers), 401)


async def test_unknown_route_is_404_naming_it(api: Api) -> None:
    response = await api.submit({"prompt": "x"}, route="nobody/nothing")
    assert "nobody/nothing" in _envelope(response, 404)


async def test_unknown_task_is_404_naming_it(api: Api) -> None:
    response = await api.submit({"prompt": "x"}, task="text-to-video")
    assert "text-to-video" in _envelope(response, 404)


async def test_unknown_prediction_is_404(api: Api) -> None:
    response = await api.client.get("/api/v3/predictions/doesnotexist/result", headers=api.auth)
    assert "doesnotexist" in _envelope(response, 404)


async def test_unknown_path_and_wrong_method_use_the_envelope(api: Api) -> None:
    _envelope(await api.client.get("/no/such/path"), 404)
    _envelope(await api.client.delete("/api/v3/predictions", headers=api.auth), 405)


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({}, "prompt", "required"),
        ({"prompt": ""}, "prompt", "at least 1"),
        ({"prompt": "   "}, "prompt", "blank"),
        ({"prompt": 5}, "prompt", "string"),
        ({"prompt": "x", "n": "3"}, "n", "integer"),
        ({"prompt": "x", "n": 0}, "n", "greater than or equal to 1"),
        ({"prompt": "x", "n": 10}, "n", "less than or equal to 9"),
        ({"prompt": "x", "n": 2.5}, "n", "integer"),
        ({"prompt": "x", "aspect_ratio": "5:4"}, "aspect_ratio", "16:9"),
        ({"prompt": "x", "resolution": "4k"}, "resolution", "1k"),
        ({"prompt": "x", "seed": -1}, "seed", "greater than or equal to 0"),
        ({"prompt": "x", "seed": 2**32}, "seed", "less than or equal to 4294967295"),
        ({"prompt": "x", "output_format": "gif"}, "output_format", "png"),
        ({"prompt": "x", "enable_sync_mode": "yes"}, "enable_sync_mode", "boolean"),
        ({"prompt": "x", "images": "http://a/b.png"}, "images", "list"),
        ({"prompt": "x", "images": ["data:image/png;base64,AAAA"] * 11}, "images", "at most 10"),
        ({"prompt": "x", "webhook": "ftp://example.com/hook"}, "webhook", "http"),
        ([1, 2], "body", "object"),
    ],
)
async def test_invalid_body_is_400_naming_field_and_rule(
    api: Api, body: object, field: str, rule: str
) -> None:
    message = _envelope(await api.submit(body), 400)
    assert message.startswith(field), message
    assert rule in message, message


async def test_prompt_longer_than_the_setting_is_400(api: Api) -> None:
    message = _envelope(await api.submit({"prompt": "x" * 4001}), 400)
    assert "prompt: at most 4000 characters (got 4001)" in message


async def test_malformed_json_is_400(api: Api) -> None:
    response = await api.client.post(
        "/api/v3/kwaivgi/kling-image-o1/text-to-image",
        content=b'{"prompt": ',
        headers={**api.auth, "Content-Type": "application/json"},
    )
    assert "valid JSON" in _envelope(response, 400)


async def test_whole_numbers_sent_as_json_floats_are_integers(api: Api) -> None:
    response = await api.submit({"prompt": "x", "n": 2.0, "seed": 7.0, "enable_sync_mode": True})
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]["outputs"]) == 2


@pytest.mark.parametrize("value", ["2", True])
async def test_n_as_string_or_bool_is_400(api: Api, value: object) -> None:
    message = _envelope(await api.submit({"prompt": "x", "n": value}), 400)
    assert message == "n: must be an integer"


async def test_unknown_fields_are_ignored(api: Api) -> None:
    response = await api.submit({"prompt": "x", "guidance": 3, "nested": {"a": 1}})
    assert response.status_code == 200


async def test_request_body_over_the_limit_is_413(api: Api) -> None:
    limit = api.services.settings.max_request_bytes  # type: ignore[attr-defined]
    response = await api.client.post(
        "/api/v3/kwaivgi/kling-image-o1/text-to-image",
        content=b" " * (limit + 1),
        headers={**api.auth, "Content-Type": "application/json"},
    )
    assert str(limit) in _envelope(response, 413)


async def test_streamed_body_over_the_limit_is_413(api: Api) -> None:
    limit = api.services.settings.max_request_bytes  # type: ignore[attr-defined]

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    response = await api.client.post(
        "/api/v3/kwaivgi/kling-image-o1/text-to-image",
        content=chunks(),
        headers={**api.auth, "Content-Type": "application/json"},
    )
    _envelope(response, 413)


async def test_unexpected_failure_is_500_with_correlation_id_and_no_trace(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    api.services.predictions.list_jobs = broken  # type: ignore[attr-defined]
    response = await api.client.get("/api/v3/predictions", headers=api.auth)
    message = _envelope(response, 500)
    correlation_id = response.json()["data"]["correlation_id"]
    assert correlation_id in message
    assert "secret internals" not in response.text and "Traceback" not in response.text
    logged = [r for r in caplog.records if getattr(r, "correlation_id", None) == correlation_id]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
