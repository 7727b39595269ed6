"""A worker whose principal is bound to a `required` signing key must sign the worker
link (the WebSocket handshake, every HTTP-link request), as callers must on every other
binding: signed it runs tasks end to end, unsigned or signed with another key it is
refused 401 saying so; a worker whose key is not required still works unsigned."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from runtime.client.client import open_a2a_client
from runtime.http.signing_settings import SigningSettings
from runtime.security import SecurityConfig
from runtime.server import ServerConfig, open_server
from runtime.worker import WorkerConfig, WorkerRejected, open_worker
from runtime.worker.signing import LinkSigner

MUST = ("w-must", b"m" * 40)  # bound to worker principal "must", required
FREE = ("w-free", b"f" * 40)  # bound to worker principal "free", not required
WORKERS = {"tok-must": "must", "tok-free": "free"}
CLIENTS = {"tok-client": "alice"}


def config() -> ServerConfig:
    signing = SigningSettings(keys=dict([MUST, FREE]),
                              principals={MUST[0]: "must", FREE[0]: "free"},
                              required_keys=frozenset({MUST[0]}))
    return ServerConfig(port=0, store="memory", local_workers=0, tokens=CLIENTS,
                        worker_tokens=WORKERS, security=SecurityConfig(request_signing=signing))


async def run_one_task(url: str) -> None:
    async with open_a2a_client(url, token="tok-client") as client:
        task = await client.send("hello")
        for _ in range(200):
            if "COMPLETED" in str(task.status.state).upper():
                return
            await trio.sleep(0.05)
            task = await client.get_task(task.id)
        raise AssertionError(f"the task did not complete: {task.status.state}")


@pytest.mark.parametrize("transport", ["websocket", "http"])
async def test_a_worker_bound_to_a_required_key_must_sign(transport: str) -> None:
    async with open_server(config()) as srv:
        with trio.fail_after(30):
            async with open_worker(srv.url, token="tok-must", transport=transport,  # type: ignore[arg-type]
                                   config=WorkerConfig(signing_key=MUST)) as worker:
                await worker.wait_registered()
                await run_one_task(srv.url)
            for key in (None, FREE):  # unsigned, or signed with another principal's key
                with pytest.raises(WorkerRejected, match="401"):
                    async with open_worker(srv.url, token="tok-must",
                                           transport=transport,  # type: ignore[arg-type]
                                           config=WorkerConfig(signing_key=key)) as worker:
                        await worker.wait_registered()
            async with open_worker(srv.url, token="tok-free", transport=transport,  # type: ignore[arg-type]
                                   ) as worker:  # its key is not required: unsigned is fine
                await worker.wait_registered()
                await run_one_task(srv.url)


async def test_the_refusal_says_a_signature_is_required() -> None:
    async with open_server(config()) as srv:
        with trio.fail_after(20):
            auth = {"Authorization": "Bearer tok-must"}
            async with httpx.AsyncClient(base_url=srv.url, headers=auth) as plain:
                r = await plain.get("/worker/link")
                assert r.status_code == 401
                error = r.json()["error"]
                assert error["code"] == "UNAUTHORIZED"
                assert error["message"].startswith("SIGNATURE_REQUIRED: this caller's "
                                                   "requests must be signed with its key")
                assert "--signing-key" in error["message"]
                # each POST is checked too, before the link id is even looked at
                r = await plain.post("/worker/link/heartbeat", content=b"{}",
                                     headers={"Worker-Link": "x"})
                assert r.status_code == 401 and "SIGNATURE_REQUIRED" in r.text
            async with httpx.AsyncClient(base_url=srv.url, headers=auth,
                                         auth=LinkSigner(MUST)) as signed:
                r = await signed.post("/worker/link/heartbeat", content=b"{}",
                                      headers={"Worker-Link": "x"})
                assert r.status_code == 404 and "UNKNOWN_LINK" in r.text  # past the check
            url = srv.url.replace("http://", "ws://") + "/worker/ws"
            with pytest.raises(ConnectionRejected) as info:
                async with open_websocket_url(
                        url, extra_headers=[(b"authorization", b"Bearer tok-must")]):
                    pass
            assert info.value.status_code == 401
            body = json.loads(info.value.body)
            assert "SIGNATURE_REQUIRED" in body["error"]["message"]
