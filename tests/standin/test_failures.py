"""The failure switches: down, busy, oom, cut, and fail_times."""

from __future__ import annotations

import aiohttp
import pytest

from .conftest import USER_HI, Standin, chunks_of, sse_payloads

BODY = {"model": "llama3.2", "messages": USER_HI}


async def test_busy_is_503_in_both_apis(standin: Standin) -> None:
    await standin.patch(fail="busy")
    message = "server busy, please try again.  maximum pending requests exceeded"
    status, body = await standin.v1(BODY)
    assert status == 503
    assert body == {"error": {"message": message, "type": "api_error", "param": None, "code": None}}
    assert await standin.native(BODY) == (503, {"error": message})


async def test_oom_is_500_with_ollamas_message(standin: Standin) -> None:
    await standin.patch(fail="oom")
    status, body = await standin.native({**BODY, "model": "qwen3:8b"})
    assert status == 500
    assert body["error"].startswith("model requires more system memory (")
    assert "GiB) than is available (" in body["error"]
    status, body = await standin.v1(BODY)
    assert (status, body["error"]["type"]) == (500, "api_error")
    async with standin.http.get(standin.base_url + "/api/ps") as resp:
        assert (await resp.json())["models"] == []  # a failed load leaves nothing loaded


async def test_fail_times_then_healthy(standin: Standin) -> None:
    settings = await standin.patch(fail="busy", fail_times=2)
    assert (settings["fail"], settings["fail_times"]) == ("busy", 2)
    statuses = [(await standin.v1(BODY))[0] for _ in range(3)]
    assert statuses == [503, 503, 200]
    async with standin.http.get(standin.base_url + "/_standin/settings") as resp:
        settings = await resp.json()
    assert (settings["fail"], settings["fail_times"]) == (None, None)


async def test_validation_errors_do_not_use_up_fail_times(standin: Standin) -> None:
    await standin.patch(fail="busy", fail_times=1)
    assert (await standin.v1({"model": "nosuch", "messages": USER_HI}))[0] == 404
    assert (await standin.v1(BODY))[0] == 503
    assert (await standin.v1(BODY))[0] == 200


async def test_cut_openai_stream_ends_without_finish_or_done(standin: Standin) -> None:
    await standin.patch(fail="cut", cut_after=3)
    async with standin.http.post(
        standin.base_url + "/v1/chat/completions", json={**BODY, "stream": True}
    ) as resp:
        assert resp.status == 200
        payloads = sse_payloads(await resp.text())  # a clean end of body, no [DONE]
    assert "[DONE]" not in payloads
    chunks = chunks_of(payloads)
    assert len(chunks) == 4
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    broken = chunks[-1]
    assert broken["model"] == "" and broken["choices"][0]["delta"] == {"content": ""}
    assert [c["model"] for c in chunks[:3]] == ["llama3.2"] * 3


async def test_cut_native_stream_ends_with_an_error_line(standin: Standin) -> None:
    await standin.patch(fail="cut", cut_after=2)
    lines = await standin.native_stream(BODY)
    assert len(lines) == 3
    assert all(line["done"] is False for line in lines[:2])
    crash = "an error was encountered while running the model: unexpected EOF"
    assert lines[-1] == {"error": crash}


async def test_cut_before_the_first_byte_or_without_stream_is_a_500(standin: Standin) -> None:
    await standin.patch(fail="cut", cut_after=0, fail_times=2)
    status, body = await standin.native(BODY)
    assert status == 500 and "error" in body
    await standin.patch(cut_after=3)
    status, body = await standin.v1(BODY)  # stream:false
    assert (status, body["error"]["type"]) == (500, "api_error")
    assert (await standin.v1(BODY))[0] == 200


async def test_down_drops_the_connection(standin: Standin) -> None:
    await standin.patch(fail="down")
    with pytest.raises(aiohttp.ClientConnectionError):
        await standin.v1(BODY)
    # Down for good: the health routes answer nothing either.
    with pytest.raises(aiohttp.ClientConnectionError):
        async with standin.http.get(standin.base_url + "/") as resp:
            await resp.read()
    # The control API still works, so a test can bring the server back.
    await standin.patch(fail=None)
    async with standin.http.get(standin.base_url + "/") as resp:
        assert await resp.text() == "Ollama is running"


async def test_down_for_a_number_of_chat_requests(standin: Standin) -> None:
    await standin.patch(fail="down", fail_times=1)
    async with standin.http.get(standin.base_url + "/api/version") as resp:
        assert resp.status == 200  # a counted outage only hits chat requests
    with pytest.raises(aiohttp.ClientConnectionError):
        await standin.v1(BODY)
    assert (await standin.v1(BODY))[0] == 200
    records = await standin.requests()
    assert [(r["status"], r["fail"], r["http_status"]) for r in records] == [
        ("error", "down", None),
        ("completed", None, 200),
    ]
