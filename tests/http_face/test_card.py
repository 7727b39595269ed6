"""The agent card: both paths, both generations' fields, ETag and caching."""

from __future__ import annotations

import httpx
import trio

from runtime.server import RunningServer


async def test_card_paths_and_fields(server: RunningServer, client: httpx.AsyncClient) -> None:
    with trio.fail_after(10):
        r = await client.get("/.well-known/agent-card.json")
        legacy = await client.get("/.well-known/agent.json")
    assert r.status_code == legacy.status_code == 200
    assert r.content == legacy.content
    card = r.json()
    interfaces = {(i["protocolBinding"], i["protocolVersion"]): i["url"]
                  for i in card["supportedInterfaces"]}
    assert interfaces == {
        ("JSONRPC", "1.0"): server.url + "/", ("HTTP+JSON", "1.0"): server.url,
        ("JSONRPC", "0.3"): server.url + "/", ("HTTP+JSON", "0.3"): server.url,
    }
    assert card["supportedInterfaces"][0]["protocolBinding"] == "JSONRPC"
    assert card["url"] == server.url + "/"
    assert card["preferredTransport"] == "JSONRPC"
    assert card["protocolVersion"] == "0.3.0"
    assert card["capabilities"]["streaming"] is True
    assert card["capabilities"]["pushNotifications"] is True
    assert card["capabilities"].get("extendedAgentCard", False) is False
    assert card["skills"] and card["defaultInputModes"] == ["text/plain"]
    assert r.headers["cache-control"].startswith("public")


async def test_card_etag_and_304(client: httpx.AsyncClient) -> None:
    with trio.fail_after(10):
        r = await client.get("/.well-known/agent-card.json")
        etag = r.headers["etag"]
        again = await client.get("/.well-known/agent-card.json", headers={"If-None-Match": etag})
        other = await client.get("/.well-known/agent-card.json",
                                 headers={"If-None-Match": '"something-else"'})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert other.status_code == 200
