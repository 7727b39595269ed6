"""HMAC request signatures on a real server: signed requests pass, and stale, replayed,
tampered, unknown-key and (when required) unsigned ones are refused with 401 saying why;
our client signs when given a key."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from protocol.request_signing import SignatureRejected, check_signature, sign_request
from runtime.client.client import open_a2a_client
from runtime.client.signing import HmacAuth, HmacKey, parse_hmac_key, signature_headers
from runtime.http.request_signing import NonceStore
from runtime.http.signing_settings import SigningSettings
from runtime.security import SecurityConfig
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import scripted_agent

SECRET = b"k" * 40
KEY = HmacKey("client-1", SECRET)
LIST = {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}


def server_config(required: bool) -> ServerConfig:
    signing = SigningSettings(keys={"client-1": SECRET}, window=300.0, required=required)
    return ServerConfig(port=0, store="memory", agent=scripted_agent(),
                        security=SecurityConfig(request_signing=signing))


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    async with open_server(server_config(required=True)) as srv:
        yield srv


async def test_signed_requests_pass_and_bad_ones_are_refused(server: RunningServer) -> None:
    h = {"A2A-Version": "1.0"}
    async with httpx.AsyncClient(base_url=server.url, auth=HmacAuth(KEY)) as signed, \
            httpx.AsyncClient(base_url=server.url) as plain:
        with trio.fail_after(20):
            assert (await signed.post("/", json=LIST, headers=h)).status_code == 200
            assert (await signed.get("/tasks?pageSize=5", headers=h)).status_code == 200
            r = await plain.post("/", json=LIST, headers=h)  # required: unsigned is refused
            assert r.status_code == 401 and "missing header" in r.text
            assert (await plain.get("/.well-known/agent-card.json")).status_code == 200
            # a captured request replayed as is
            request = signed.build_request("POST", "/", json=LIST, headers=h)
            for name, value in signature_headers(KEY, "POST", str(request.url),
                                                 request.content, time.time()).items():
                request.headers[name] = value
            assert (await plain.send(request)).status_code == 200
            r = await plain.send(request)
            assert r.status_code == 401 and "already used" in r.text
            # the same signature on another body
            tampered = plain.build_request("POST", "/", content=b'{"jsonrpc":"2.0","id":2,'
                                           b'"method":"ListTasks","params":{}}',
                                           headers={**h, **{k: v for k, v in request.headers.items()
                                                            if k.startswith("x-a2a-")}})
            tampered.headers["x-a2a-nonce"] = "fresh-nonce"
            r = await plain.send(tampered)
            assert r.status_code == 401 and "does not match" in r.text
            # stale and future timestamps
            for skew in (-400.0, 400.0):
                async with httpx.AsyncClient(base_url=server.url, auth=HmacAuth(
                        KEY, clock=lambda s=skew: time.time() + s)) as off:
                    r = await off.post("/", json=LIST, headers=h)
                    assert r.status_code == 401 and "outside the allowed window" in r.text
            async with httpx.AsyncClient(base_url=server.url, auth=HmacAuth(
                    HmacKey("nobody", SECRET))) as unknown:
                r = await unknown.post("/", json=LIST, headers=h)
                assert r.status_code == 401 and "unknown key id" in r.text
                assert SECRET.decode() not in r.text


async def test_our_client_signs_when_given_a_key(server: RunningServer) -> None:
    with trio.fail_after(20):
        async with open_a2a_client(server.url, signing_key=KEY) as client:
            task = await client.send("hello")
            assert task is not None


async def test_optional_signing_checks_only_signed_requests() -> None:
    async with open_server(server_config(required=False)) as srv, \
            httpx.AsyncClient(base_url=srv.url) as plain:
        with trio.fail_after(10):
            h = {"A2A-Version": "1.0"}
            assert (await plain.post("/", json=LIST, headers=h)).status_code == 200
            r = await plain.post("/", json=LIST, headers={**h, "x-a2a-key-id": "client-1"})
            assert r.status_code == 401  # a partial signature is not ignored


def test_window_and_nonces_on_a_fake_clock() -> None:
    nonces = NonceStore(300.0)
    keys = {"k": SECRET}

    def check(ts: int, nonce: str, now: float) -> str:
        sig = sign_request(SECRET, "POST", "/", str(ts), nonce, b"{}")
        headers = {"x-a2a-key-id": "k", "x-a2a-timestamp": str(ts), "x-a2a-nonce": nonce,
                   "x-a2a-signature": sig}
        return check_signature(headers, "POST", "/", b"{}", keys=keys, now=now, window=300.0,
                               first_use=lambda k, n: nonces.first_use(k, n, now))

    assert check(1000, "a", 1300.0) == "k"  # exactly at the edge of the window
    with pytest.raises(SignatureRejected, match="window"):
        check(1000, "b", 1300.5)
    with pytest.raises(SignatureRejected, match="already used"):
        check(1100, "a", 1300.0)
    assert check(2000, "a", 2000.0) == "k"  # long after the window, the nonce is gone


def test_key_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SigningSettings(keys={"k": b"short"})
    with pytest.raises(ValueError, match="at least one key"):
        SigningSettings(keys={})
    assert parse_hmac_key("id:" + "s" * 32).key_id == "id"
    with pytest.raises(ValueError):
        parse_hmac_key("no-secret")


@pytest.mark.parametrize("transport", ["websocket", "http"])
async def test_workers_sign_the_worker_link(transport: str) -> None:
    from runtime.worker import WorkerConfig, WorkerRejected, open_worker

    signing = SigningSettings(keys={"worker-1": SECRET}, required=True)
    config = ServerConfig(port=0, store="memory", local_workers=0,
                          security=SecurityConfig(request_signing=signing))
    async with open_server(config) as srv:
        with trio.fail_after(20):
            async with open_worker(srv.url, token=None, transport=transport,  # type: ignore[arg-type]
                                   config=WorkerConfig(signing_key=("worker-1", SECRET))
                                   ) as worker:
                await worker.wait_registered()
                async with open_a2a_client(srv.url, signing_key=HmacKey("worker-1", SECRET)
                                           ) as client:
                    task = await client.send("hi")
                    assert task is not None
            with pytest.raises(WorkerRejected):
                async with open_worker(srv.url, token=None, transport=transport,  # type: ignore[arg-type]
                                       config=WorkerConfig(signing_key=("worker-1", b"x" * 40))
                                       ) as worker:
                    await worker.wait_registered()


async def test_a_signed_body_that_never_arrives_times_out(autojump_clock: object) -> None:
    from runtime.http.request_signing import SignatureCheck

    async def never(scope: dict, receive: object, send: object) -> None:
        raise AssertionError("the app must not be reached")

    check = SignatureCheck(SigningSettings(keys={"client-1": SECRET}), never,  # type: ignore[arg-type]
                           max_body=1000)
    sent: list[dict] = []

    async def receive() -> dict:
        await trio.sleep_forever()
        raise AssertionError

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"",
             "headers": [(b"x-a2a-key-id", b"client-1"), (b"content-length", b"10")]}
    start = trio.current_time()
    await check(scope, receive, send)  # type: ignore[arg-type]
    assert trio.current_time() - start == 60.0
    assert sent[0]["status"] == 408


async def test_a_key_bound_to_a_principal_is_required_of_it(tmp_path: object) -> None:
    from pathlib import Path

    from runtime.cli import server_config as cli_config
    from runtime.flags import build_parser

    keys = Path(str(tmp_path)) / "keys"
    keys.write_text(f"alice-key:{SECRET.decode()} principal=alice required\n"
                    f"spare:{'s' * 40}\n")
    tokens = Path(str(tmp_path)) / "tokens"
    tokens.write_text("alice:tok-alice\nbob:tok-bob\n")
    args = build_parser().parse_args(["server", "--port", "0", "--store", "memory",
                                      "--tokens-file", str(tokens),
                                      "--signing-keys-file", str(keys)])
    config = cli_config(args)
    alice_key = HmacKey("alice-key", SECRET)
    async with open_server(config) as srv:
        with trio.fail_after(20):
            def client(token: str, key: HmacKey | None) -> httpx.AsyncClient:
                return httpx.AsyncClient(base_url=srv.url, auth=HmacAuth(key) if key else None,
                                         headers={"Authorization": f"Bearer {token}",
                                                  "A2A-Version": "1.0"})

            async with client("tok-alice", None) as c:
                r = await c.post("/", json=LIST)
                assert r.json()["error"]["code"] == -32044
                r = await c.get("/tasks")
                assert r.status_code == 401 and "SIGNATURE_REQUIRED" in r.text
            async with client("tok-alice", alice_key) as c:
                assert "result" in (await c.post("/", json=LIST)).json()
                assert (await c.get("/tasks")).status_code == 200
            async with client("tok-alice", HmacKey("spare", b"s" * 40)) as c:
                assert (await c.post("/", json=LIST)).json()["error"]["code"] == -32044
            async with client("tok-bob", None) as c:  # bob has no key of his own
                assert "result" in (await c.post("/", json=LIST)).json()
            async with client("tok-bob", alice_key) as c:  # alice's key signs for alice only
                r = await c.post("/", json=LIST)
                assert r.json()["error"]["code"] == -32044
                assert "another principal" in r.text
    keys.write_text(f"k:{SECRET.decode()} required\n")
    with pytest.raises(ValueError, match="line 1: 'required' needs principal=P"):
        cli_config(build_parser().parse_args(["server", "--signing-keys-file", str(keys)]))
    keys.write_text(f"k:{SECRET.decode()} owner=x\n")
    with pytest.raises(ValueError, match="line 1: unknown attribute 'owner'"):
        cli_config(build_parser().parse_args(["server", "--signing-keys-file", str(keys)]))
