"""The admin API keeps a caller's signing key required of it: an identity bound to a
key with `required` must sign its admin requests with it (else 401, -32044
SIGNATURE_REQUIRED), on both bindings, as its A2A calls."""

from __future__ import annotations

import httpx
import pytest
import trio

from runtime.admin import AdminSettings
from runtime.client.signing import HmacAuth, HmacKey
from runtime.http.auth import TokenEntry
from runtime.http.signing_settings import SigningSettings
from runtime.security import SecurityConfig
from runtime.server import ServerConfig, open_server
from tests.admin.helpers import TOKEN, Admin, AdminError
from tests.agents import scripted_agent

SECRET = b"k" * 40
ENTRIES = {"tok-alice": TokenEntry("alice", ("operator",)),
           "tok-bob": TokenEntry("bob", ("operator",))}


@pytest.mark.parametrize("binding", ["rest", "rpc"])
async def test_a_required_key_is_required_on_the_admin_api(binding: str) -> None:
    signing = SigningSettings(keys={"alice-key": SECRET}, principals={"alice-key": "alice"},
                              required_keys=frozenset({"alice-key"}))
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(),
                          tokens={t: e.principal for t, e in ENTRIES.items()},
                          admin=AdminSettings(token=TOKEN),
                          security=SecurityConfig(token_entries=ENTRIES,
                                                  request_signing=signing))
    async with open_server(config) as srv:
        with trio.fail_after(20):
            async with httpx.AsyncClient(base_url=srv.url, timeout=10) as plain:
                with pytest.raises(AdminError) as info:
                    await Admin(plain, binding, token="tok-alice")("listWorkers")
                assert info.value.status == 401
                assert info.value.code == ("SIGNATURE_REQUIRED" if binding == "rest"
                                           else -32044)
                assert "must be signed with its key" in info.value.message
                # others are free to sign or not; the admin token is no principal's
                await Admin(plain, binding, token="tok-bob")("listWorkers")
                await Admin(plain, binding)("listWorkers")
            async with httpx.AsyncClient(base_url=srv.url, timeout=10,
                                         auth=HmacAuth(HmacKey("alice-key", SECRET))) as signed:
                assert "workers" in await Admin(signed, binding, token="tok-alice")(
                    "listWorkers")
                with pytest.raises(AdminError) as info:  # alice's key signs for alice only
                    await Admin(signed, binding, token="tok-bob")("listWorkers")
                assert info.value.status == 401 and "another principal" in info.value.message
