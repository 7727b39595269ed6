"""A seeded fuzz of Authorization headers and token shapes against a real server with
static tokens and JWTs (HS256 and a JWKS): never a 5xx, and a task is only ever seen by
the identity (principal and tenant) that created it."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable

import httpx
import trio

from protocol.identity import ClaimNames
from runtime.http.auth import TokenEntry
from runtime.http.jwt_auth import JwtSettings
from runtime.security import SecurityConfig
from runtime.server import ServerConfig, open_server
from tests.agents import scripted_agent
from tests.conftest import user_message
from tests.security.keys import (
    AUDIENCE,
    ISSUER,
    SECRET,
    claims,
    hs_token,
    key_token,
    new_key,
    serve_jwks,
)

SEED = 20261207
CASES = 2400
EC = new_key("ec-1", "ES256")
ENTRIES = {"static-alice": TokenEntry("alice", None, "acme"),
           "static-bob": TokenEntry("bob", None, "acme")}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _printable(rng: random.Random, n: int) -> str:
    return "".join(chr(rng.randint(0x21, 0x7e)) for _ in range(n))


def make_cases(rng: random.Random, valid: dict[str, str]) -> list[tuple[str | None, str | None]]:
    """(Authorization header, the identity it may legitimately prove) pairs."""
    tokens = list(valid)
    weird_headers = [{"alg": "none"}, {"alg": "None"}, {"alg": "HS256", "kid": 7},
                     {"alg": "ES256", "kid": ["x"]}, {"alg": "ES256", "kid": "ec-1",
                                                      "jku": "http://127.0.0.1:1/"},
                     {"alg": "RS256", "kid": "ec-1"}, {"alg": "HS256", "crit": ["exp"]},
                     {"alg": 5}, {}, {"alg": "ES256", "kid": "../../etc/passwd"}]
    weird_claims: list[object] = [
        claims(sub=None), claims(sub=["a"]), claims(sub="x" * 5000), claims(tenant=7),
        claims(roles=[1, 2]), claims(roles="admin " * 100), claims(exp="soon"),
        claims(nbf=10**20), claims(aud=["x", AUDIENCE]), [1, 2], "str", None]
    mutators: list[Callable[[str], str]] = [
        lambda t: t[:-1],
        lambda t: t + rng.choice("Aa.=-_"),
        lambda t: t[: rng.randrange(len(t))],
        lambda t: (lambda i: t[:i] + chr(rng.randint(0x21, 0x7e)) + t[i + 1:])(
            rng.randrange(len(t))),
        lambda t: t.replace(".", "", 1),
        lambda t: ".".join(reversed(t.split("."))),
        lambda t: t.upper(),
        lambda t: t + "." + t,
    ]
    out: list[tuple[str | None, str | None]] = []
    for _ in range(CASES):
        kind = rng.randrange(9)
        scheme = rng.choice(["Bearer", "Bearer", "bearer", "BEARER", "Basic", "Token", ""])
        if kind == 0:
            t = rng.choice(tokens)
            out.append((f"{scheme} {t}" if scheme else t,
                        valid[t] if scheme.lower() == "bearer" else None))
        elif kind in (1, 2):
            original = rng.choice(tokens)
            t = rng.choice(mutators)(original)
            # a mutation that still verifies (a no-op edit, base64's spare bits) can only
            # prove the original identity: the signature covers the claims
            out.append((f"Bearer {t}", valid[original]))
        elif kind == 3:
            head = rng.choice(weird_headers)
            body = rng.choice(weird_claims)
            t = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(body).encode())}." \
                f"{b64(rng.randbytes(rng.choice([0, 32, 64])))}"
            out.append((f"Bearer {t}", None))
        elif kind == 4:
            t = ".".join(b64(rng.randbytes(rng.randint(0, 40))) for _ in range(rng.randint(1, 6)))
            out.append((f"Bearer {t}", None))
        elif kind == 5:
            out.append((f"{scheme} {_printable(rng, rng.randint(0, 300))}", None))
        elif kind == 6:
            out.append((rng.choice(["", " ", "Bearer", "Bearer ", "Bearer  \t", None]), None))
        elif kind == 7:
            sub = rng.choice(["alice", "bob", "mallory"])
            tenant = rng.choice(["acme", "globex", ""])
            secret = rng.choice([SECRET, SECRET + "x", "y" * 40])
            t = hs_token(claims(sub=sub, tenant=tenant), secret=secret)
            out.append((f"Bearer {t}", f"{tenant}/{sub}" if secret == SECRET else None))
        else:
            t = "x" * rng.choice([1, 1000, 9000, 20000])
            out.append((f"Bearer {t}", None))
    return out


def _tasks_seen(r: httpx.Response) -> list[str]:
    """The ids of the tasks a successful answer shows (an error echoing the id asked
    for shows nothing)."""
    if r.status_code != 200:
        return []
    body = r.json()
    if "jsonrpc" in body:
        body = body.get("result")
        if body is None:
            return []
    if "tasks" in body:
        return [t["id"] for t in body["tasks"]]
    return [body["id"]]


async def test_fuzzed_authorization_never_errs_nor_leaks() -> None:
    rng = random.Random(SEED)
    async with serve_jwks([EC]) as jwks:
        jwt = JwtSettings(issuer=ISSUER, audience=AUDIENCE, secret=SECRET, jwks_url=jwks.url,
                          claims=ClaimNames())
        config = ServerConfig(port=0, store="memory", agent=scripted_agent(),
                              tokens={t: e.principal for t, e in ENTRIES.items()},
                              security=SecurityConfig(token_entries=ENTRIES, jwt=jwt))
        valid = {"static-alice": "acme/alice", "static-bob": "acme/bob",
                 hs_token(claims("alice", tenant="globex")): "globex/alice",
                 key_token(EC, claims("alice", tenant="acme")): "acme/alice",
                 hs_token(claims("carol")): "/carol"}
        async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as c:
            with trio.fail_after(240):
                owner_of: dict[str, str] = {}
                for token, who in valid.items():
                    r = await c.post("/", json={"jsonrpc": "2.0", "id": 1,
                                                "method": "SendMessage",
                                                "params": {"message": user_message("ask")}},
                                     headers={"Authorization": f"Bearer {token}",
                                              "A2A-Version": "1.0"})
                    owner_of[r.json()["result"]["task"]["id"]] = who
                task_ids = list(owner_of)
                cases = make_cases(rng, valid)
                for n, (header, may_be) in enumerate(cases):
                    task_id = rng.choice(task_ids)
                    headers = {"A2A-Version": "1.0"}
                    if header is not None:  # httpx sends no value with edge whitespace
                        headers["Authorization"] = header.strip(" \t")
                    if n % 2:
                        r = await c.post("/", headers=headers, json={
                            "jsonrpc": "2.0", "id": 1,
                            "method": rng.choice(["GetTask", "ListTasks"]),
                            "params": {"id": task_id}})
                    else:
                        r = await c.get(rng.choice([f"/tasks/{task_id}", "/tasks"]),
                                        headers=headers)
                    where = f"case {n}: {header!r:.120}"
                    assert r.status_code < 500, where
                    for tid in _tasks_seen(r):
                        assert may_be == owner_of[tid], where
                    if may_be is None:
                        assert r.status_code in (400, 401), where
