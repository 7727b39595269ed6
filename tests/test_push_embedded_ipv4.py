"""The SSRF guard looks inside IPv6 addresses that carry an IPv4 address to an IPv4 host:
IPv4-mapped and IPv4-compatible forms, NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48),
6to4 (2002::/16) and Teredo (2001::/32). Checked when a push config is created (a real server
on loopback) and again at delivery (the sender, through its resolver and with literals)."""

from __future__ import annotations

import ipaddress

import httpx
import pytest
import trio

from actors.push_configs import check_push_url, embedded_ipv4, is_public_address
from actors.push_delivery import PushSendError
from protocol.errors import InvalidParamsError
from runtime.http.push_sender import HttpxPushSender
from runtime.http.push_sender import is_public_address as sender_is_public_address
from tests.conftest import Rpc, user_message

# Each carries a loopback, private, link-local or otherwise non-public IPv4 address.
REFUSED = {
    "mapped-loopback": "::ffff:127.0.0.1",
    "mapped-private": "::ffff:10.0.0.1",
    "mapped-multicast": "::ffff:224.0.0.1",
    "compatible-loopback": "::127.0.0.1",
    "compatible-metadata": "::169.254.169.254",
    "nat64-loopback": "64:ff9b::7f00:1",
    "nat64-metadata": "64:ff9b::a9fe:a9fe",
    "nat64-private": "64:ff9b::c0a8:105",
    "nat64-local-use-loopback": "64:ff9b:1::7f00:1",
    "nat64-local-use-public": "64:ff9b:1::808:808",  # local use: never public, whatever it carries
    "6to4-loopback": "2002:7f00:1::1",
    "6to4-private": "2002:a00:1::",
    "teredo-client-loopback": "2001:0:4136:e378:8000:63bf:80ff:fffe",  # client 127.0.0.1
    "teredo-client-private": "2001:0:808:808::f5ff:fffe",  # server 8.8.8.8, client 10.0.0.1
}
# The same forms carrying a public IPv4 address, and plain global IPv6: still allowed.
ALLOWED = {
    "mapped-public": "::ffff:8.8.8.8",
    "nat64-public": "64:ff9b::808:808",
    "6to4-public": "2002:808:808::1",
    "global-v6": "2606:4700:4700::1111",
}


def test_embedded_ipv4_of_each_form() -> None:
    def emb(text: str) -> list[str]:
        return [str(a) for a in embedded_ipv4(ipaddress.IPv6Address(text))]

    assert emb("::ffff:127.0.0.1") == ["127.0.0.1"]
    assert emb("::127.0.0.1") == ["127.0.0.1"]
    assert emb("64:ff9b::a9fe:a9fe") == ["169.254.169.254"]
    assert emb("64:ff9b:1::7f00:1") == ["127.0.0.1"]
    assert emb("2002:7f00:1::1") == ["127.0.0.1"]
    assert emb("2001:0:808:808::f5ff:fffe") == ["8.8.8.8", "10.0.0.1"]  # server, client
    assert emb("2606:4700:4700::1111") == []


@pytest.mark.parametrize("addr", list(REFUSED.values()), ids=list(REFUSED))
def test_embedded_non_public_ipv4_is_not_public(addr: str) -> None:
    assert not is_public_address(ipaddress.ip_address(addr))
    assert sender_is_public_address is is_public_address  # one policy, two doors
    with pytest.raises(InvalidParamsError, match="allow-private-push-urls"):
        check_push_url(f"http://[{addr}]/hook", allow_private=False)
    check_push_url(f"http://[{addr}]/hook", allow_private=True)


@pytest.mark.parametrize("addr", list(ALLOWED.values()), ids=list(ALLOWED))
def test_embedded_public_ipv4_stays_public(addr: str) -> None:
    assert is_public_address(ipaddress.ip_address(addr))
    check_push_url(f"http://[{addr}]:8443/hook", allow_private=False)


def test_multicast_refused_at_creation_too() -> None:
    with pytest.raises(InvalidParamsError, match="allow-private-push-urls"):
        check_push_url("http://224.0.0.1/hook", allow_private=False)


async def test_create_config_refuses_embedded_private_ipv4() -> None:
    from runtime.server import ServerConfig, open_server

    async with open_server(ServerConfig(port=0, store="memory")) as srv, \
            httpx.AsyncClient(base_url=srv.url) as c:
        rpc = Rpc(c, "1.0")
        with trio.fail_after(20):
            task = await rpc.call("SendMessage", {"message": user_message("echo x"),
                                                  "configuration": {"returnImmediately": True}})
            for name, addr in REFUSED.items():
                url = f"http://[{addr}]:8080/hook"
                err = await rpc.error("CreateTaskPushNotificationConfig",
                                      {"taskId": task["task"]["id"], "url": url})
                assert err["code"] == -32602, name
                assert url in err["message"] and "allow-private-push-urls" in err["message"]
            listed = await rpc.call("ListTaskPushNotificationConfigs",
                                    {"taskId": task["task"]["id"]})
            assert listed.get("configs", []) == []


class _Recorder:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200)


def _sender(rec: _Recorder, client: httpx.AsyncClient, addrs: list[str]) -> HttpxPushSender:
    async def resolve(host: str, port: int) -> list[str]:
        assert host == "hooks.example"
        return addrs
    return HttpxPushSender(client=client, resolver=resolve)


@pytest.mark.parametrize("addr", list(REFUSED.values()), ids=list(REFUSED))
async def test_delivery_refuses_embedded_private_ipv4(addr: str) -> None:
    rec = _Recorder()
    with trio.fail_after(10):
        async with httpx.AsyncClient(transport=httpx.MockTransport(rec)) as client:
            sender = _sender(rec, client, [addr])
            with pytest.raises(PushSendError, match="non-public address") as by_name:
                await sender.post("http://hooks.example/hook", b"{}", {})
            with pytest.raises(PushSendError, match="not a public address") as literal:
                await sender.post(f"http://[{addr}]/hook", b"{}", {})
    assert by_name.value.permanent and literal.value.permanent
    assert rec.requests == []


@pytest.mark.parametrize("addr", list(ALLOWED.values()), ids=list(ALLOWED))
async def test_delivery_allows_embedded_public_ipv4(addr: str) -> None:
    rec = _Recorder()
    with trio.fail_after(10):
        async with httpx.AsyncClient(transport=httpx.MockTransport(rec)) as client:
            reply = await _sender(rec, client, [addr]).post("http://hooks.example/hook", b"{}", {})
    assert reply.status == 200
    [request] = rec.requests
    assert ipaddress.ip_address(request.url.host) == ipaddress.ip_address(addr)  # pinned
    assert request.headers["host"] == "hooks.example"
