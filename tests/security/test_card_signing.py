"""The signed agent card: the server signs it (JWS over its RFC 8785 form, A2A 1.0
`signatures`), and our client trusts it only when a given key or JWKS verifies it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import trio
from cryptography.hazmat.primitives import serialization

from protocol.jcs import canonical_json
from runtime.client.card_verify import CardKeys, verify_card
from runtime.client.client import open_a2a_client
from runtime.client.errors import A2AResponseError
from runtime.http.card_signing import load_card_signer
from runtime.security import SecurityConfig
from runtime.server import ServerConfig, open_server
from tests.security.keys import new_key


def _pem(tmp_path: Path, alg: str) -> tuple[Path, object]:
    key = new_key("card-1", alg)
    path = tmp_path / f"{alg}.pem"
    path.write_bytes(key.private.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return path, key


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
async def test_signed_card_verifies_and_forgeries_do_not(tmp_path: Path, alg: str) -> None:
    path, key = _pem(tmp_path, alg)
    signer = load_card_signer(path, kid="card-1")
    config = ServerConfig(port=0, store="memory", security=SecurityConfig(card_signer=signer))
    other = new_key("card-1", alg)
    async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as c:
        with trio.fail_after(20):
            data = (await c.get("/.well-known/agent-card.json")).json()
            assert len(data["signatures"]) == 1
            public = key.private.public_key()  # type: ignore[attr-defined]
            verify_card(data, CardKeys(public, kid="card-1"), "card")
            verify_card(data, CardKeys(jwks={"keys": [key.jwk()]}), "card")  # type: ignore[attr-defined]
            with pytest.raises(A2AResponseError, match="no signature by a trusted key"):
                verify_card(data, CardKeys(other.private.public_key()), "card")
            with pytest.raises(A2AResponseError, match="no signature by a trusted key"):
                verify_card({**data, "name": "Impostor"}, CardKeys(public), "card")
            with pytest.raises(A2AResponseError, match="not signed"):
                verify_card({k: v for k, v in data.items() if k != "signatures"},
                            CardKeys(public), "card")
            async with open_a2a_client(srv.url, card_keys=CardKeys(public)) as client:
                assert client.agent_card.name == data["name"]
            with pytest.raises(A2AResponseError):
                async with open_a2a_client(srv.url,
                                           card_keys=CardKeys(other.private.public_key())):
                    pass


def test_canonical_json_follows_rfc_8785() -> None:
    value = {"b": [1, 2.0, 1e21, 0.5, True, None], "a": "é\u2028", "\u20ac": 1, "\U0001f600": 2}
    out = canonical_json(value)
    assert out == ('{"a":"é\u2028","b":[1,2,1e+21,0.5,true,null],"\u20ac":1,'
                   '"\U0001f600":2}').encode()
    assert json.loads(out) == {**value, "b": [1, 2, 1e21, 0.5, True, None]}


def test_bad_signing_keys_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(ValueError, match="bad.pem"):
        load_card_signer(bad, kid="x")
