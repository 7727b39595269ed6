"""The security flags of `python -m runtime server` (JWTs, roles, rate limits, CORS),
and the `SecurityConfig` they make. docs/security.md describes each."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.flags.env import ENV_PREFIX, _env, _number_env, _number_type

if TYPE_CHECKING:
    from runtime.http.auth import TokenEntry
    from runtime.security import SecurityConfig

__all__ = ["add_security_arguments", "security_config"]


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def add_security_arguments(s: argparse.ArgumentParser) -> None:
    g = s.add_argument_group("identities, roles and limits (docs/security.md)")
    g.add_argument("--jwt-issuer", default=_env("JWT_ISSUER"),
                   help="accept JWT bearer tokens from this issuer (the `iss` claim) "
                   "[TRIO_A2A_JWT_ISSUER]")
    g.add_argument("--jwt-audience", default=_env("JWT_AUDIENCE"),
                   help="the `aud` claim JWTs must carry [TRIO_A2A_JWT_AUDIENCE]")
    g.add_argument("--jwt-jwks-url", default=_env("JWT_JWKS_URL"),
                   help="the identity provider's JWKS URL (RS256, ES256, EdDSA keys; cached, "
                   "refetched on an unknown kid) [TRIO_A2A_JWT_JWKS_URL]")
    g.add_argument("--jwt-jwks-file", default=_env("JWT_JWKS_FILE"),
                   help="a JWKS file, read again on an unknown kid [TRIO_A2A_JWT_JWKS_FILE]")
    g.add_argument("--jwt-secret-env", default=ENV_PREFIX + "JWT_SECRET",
                   help="environment variable holding the HS256 shared secret (32 bytes or "
                   "more) (default TRIO_A2A_JWT_SECRET)")
    g.add_argument("--jwt-leeway", type=_number_type(float, "JWT_LEEWAY"),
                   default=_number_env("JWT_LEEWAY", 30),
                   help="clock skew allowed on exp and nbf, seconds [TRIO_A2A_JWT_LEEWAY] "
                   "(default 30)")
    g.add_argument("--jwt-claims", default=_env("JWT_CLAIMS", "sub,tenant,roles"),
                   help="claims naming the principal, tenant and roles; a dotted name reads "
                   "a nested claim (realm_access.roles) [TRIO_A2A_JWT_CLAIMS] "
                   "(default sub,tenant,roles)")
    g.add_argument("--default-roles", default=_env("DEFAULT_ROLES", "client"),
                   help="roles of a static token without roles= and of a JWT without a roles "
                   "claim [TRIO_A2A_DEFAULT_ROLES] (default client: every client operation, "
                   "not the admin API)")
    g.add_argument("--anonymous-roles", default=_env("ANONYMOUS_ROLES", "client"),
                   help="roles of every caller while auth is off [TRIO_A2A_ANONYMOUS_ROLES] "
                   "(default client)")
    g.add_argument("--roles-file", default=_env("ROLES_FILE"),
                   help="JSON object of more roles: name -> list of permissions "
                   "[TRIO_A2A_ROLES_FILE]")
    g.add_argument("--rate-limit", default=_env("RATE_LIMIT"),
                   help="requests per principal, RATE/s[,BURST] or RATE/m[,BURST], per "
                   "process [TRIO_A2A_RATE_LIMIT] (default unlimited)")
    g.add_argument("--tenant-rate-limit", default=_env("TENANT_RATE_LIMIT"),
                   help="requests per tenant, as --rate-limit [TRIO_A2A_TENANT_RATE_LIMIT]")
    g.add_argument("--token-service-secret-env", default=ENV_PREFIX + "TOKEN_SERVICE_SECRET",
                   help="environment variable holding the built-in token service's signing "
                   "secret (32 bytes or more); the service is on when it is set (default "
                   "TRIO_A2A_TOKEN_SERVICE_SECRET)")
    g.add_argument("--access-token-ttl", type=_number_type(float, "ACCESS_TOKEN_TTL"),
                   default=_number_env("ACCESS_TOKEN_TTL", 900),
                   help="seconds an access token of the token service lasts "
                   "[TRIO_A2A_ACCESS_TOKEN_TTL] (default 900)")
    g.add_argument("--refresh-token-ttl", type=_number_type(float, "REFRESH_TOKEN_TTL"),
                   default=_number_env("REFRESH_TOKEN_TTL", 30 * 86400),
                   help="seconds a refresh token lasts [TRIO_A2A_REFRESH_TOKEN_TTL] "
                   "(default 2592000, 30 days)")
    g.add_argument("--signing-keys-file", default=_env("SIGNING_KEYS_FILE"),
                   help="HMAC request-signing keys, one KEY_ID:SECRET per line (secrets of 32 "
                   "bytes or more); signed requests are checked [TRIO_A2A_SIGNING_KEYS_FILE]")
    g.add_argument("--worker-identities", action="store_true",
                   default=_env("WORKER_IDENTITIES") == "1",
                   help="let credentials whose roles grant worker.link (agent, admin) and "
                   "that have no tenant connect workers, beside --worker-tokens-file "
                   "[TRIO_A2A_WORKER_IDENTITIES=1]")
    g.add_argument("--require-signed-requests", action="store_true",
                   default=_env("REQUIRE_SIGNED_REQUESTS") == "1",
                   help="refuse requests without a valid signature (the card and probes "
                   "excepted) [TRIO_A2A_REQUIRE_SIGNED_REQUESTS=1]")
    g.add_argument("--signature-window", type=_number_type(float, "SIGNATURE_WINDOW"),
                   default=_number_env("SIGNATURE_WINDOW", 300),
                   help="seconds a signature's timestamp may be off, either way "
                   "[TRIO_A2A_SIGNATURE_WINDOW] (default 300)")
    g.add_argument("--card-signing-key", default=_env("CARD_SIGNING_KEY"),
                   help="sign the agent card with this PEM private key (EC P-256, RSA or "
                   "Ed25519) [TRIO_A2A_CARD_SIGNING_KEY]")
    g.add_argument("--card-signing-kid", default=_env("CARD_SIGNING_KID", "card"),
                   help="the key id the card's signature names [TRIO_A2A_CARD_SIGNING_KID]")
    g.add_argument("--cors-origins", default=_env("CORS_ORIGINS"),
                   help="comma-separated browser origins allowed to call the server, or '*'; "
                   "CORS is off without it [TRIO_A2A_CORS_ORIGINS]")
    g.add_argument("--cors-methods", default=_env("CORS_METHODS", "GET,POST,DELETE,OPTIONS"),
                   help="methods a preflight allows [TRIO_A2A_CORS_METHODS]")
    g.add_argument("--cors-headers", default=_env(
        "CORS_HEADERS", "Authorization,Content-Type,A2A-Version,Last-Event-ID,A2A-Extensions"),
        help="request headers a preflight allows [TRIO_A2A_CORS_HEADERS]")


def security_config(args: argparse.Namespace) -> SecurityConfig:
    """The SecurityConfig of the flags; ValueError naming the flag if one is bad."""
    # Imported here, not with the parser: `--help` has no use for JWT and crypto libraries.
    from protocol.identity import ClaimNames
    from runtime.http.auth import load_token_entries
    from runtime.http.card_signing import load_card_signer
    from runtime.http.cors import CorsSettings
    from runtime.http.jwt_auth import JwtSettings
    from runtime.http.rate_limit import RateLimit
    from runtime.http.signing_settings import SigningSettings
    from runtime.http.token_service import TokenServiceSettings
    from runtime.security import SecurityConfig

    entries: dict[str, TokenEntry] = {}
    if args.tokens_file:
        try:
            entries = load_token_entries(args.tokens_file, None)
        except ValueError as exc:
            raise ValueError(f"--tokens-file: {exc}") from None
    secret = os.environ.get(args.jwt_secret_env) or None
    jwt = None
    if secret or args.jwt_jwks_url or args.jwt_jwks_file:
        names = _list(args.jwt_claims)
        if len(names) != 3:
            raise ValueError("--jwt-claims: expected three claim names: principal,tenant,roles")
        try:
            jwt = JwtSettings(issuer=args.jwt_issuer, audience=args.jwt_audience, secret=secret,
                              jwks_url=args.jwt_jwks_url, jwks_file=args.jwt_jwks_file,
                              leeway=args.jwt_leeway, claims=ClaimNames(*names),
                              default_roles=_list(args.default_roles))
        except ValueError as exc:
            raise ValueError(f"JWT settings: {exc}") from None
    elif args.jwt_issuer or args.jwt_audience:
        raise ValueError("--jwt-issuer/--jwt-audience need a key: --jwt-jwks-url, "
                         f"--jwt-jwks-file or a secret in ${args.jwt_secret_env}")
    roles: dict[str, tuple[str, ...]] = {}
    if args.roles_file:
        try:
            data = json.loads(Path(args.roles_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"--roles-file {args.roles_file}: {exc}") from None
        if not isinstance(data, dict) or not all(
                isinstance(v, list) and all(isinstance(p, str) for p in v) for v in data.values()):
            raise ValueError(f"--roles-file {args.roles_file}: expected an object of "
                             "role name -> list of permission names")
        roles = {k: tuple(v) for k, v in data.items()}
    limits = []
    for flag, value in (("--rate-limit", args.rate_limit),
                        ("--tenant-rate-limit", args.tenant_rate_limit)):
        try:
            limits.append(RateLimit.parse(value) if value else None)
        except ValueError as exc:
            raise ValueError(f"{flag}: {exc}") from None
    cors = None
    if args.cors_origins:
        cors = CorsSettings(origins=_list(args.cors_origins), methods=_list(args.cors_methods),
                            headers=_list(args.cors_headers))
    token_service = None
    service_secret = os.environ.get(args.token_service_secret_env) or None
    if service_secret:
        try:
            token_service = TokenServiceSettings(secret=service_secret,
                                                 access_ttl=args.access_token_ttl,
                                                 refresh_ttl=args.refresh_token_ttl)
        except ValueError as exc:
            raise ValueError(f"token service: {exc}") from None
    signing = None
    if args.signing_keys_file:
        keys, principals, required = _signing_keys(args.signing_keys_file)
        signing = SigningSettings(keys=keys, window=args.signature_window,
                                  required=args.require_signed_requests,
                                  principals=principals, required_keys=frozenset(required))
    elif args.require_signed_requests:
        raise ValueError("--require-signed-requests needs --signing-keys-file")
    card_signer = (load_card_signer(args.card_signing_key, args.card_signing_kid)
                   if args.card_signing_key else None)
    config = SecurityConfig(token_entries=entries, jwt=jwt, roles=roles,
                            token_service=token_service, request_signing=signing,
                            card_signer=card_signer, worker_identities=args.worker_identities,
                            default_roles=_list(args.default_roles),
                            anonymous_roles=_list(args.anonymous_roles),
                            rate_limit=limits[0], tenant_rate_limit=limits[1], cors=cors)
    role_table = config.role_table()  # an unknown permission: ValueError naming the role
    role_table.check_known(config.default_roles, "--default-roles")
    role_table.check_known(config.anonymous_roles, "--anonymous-roles")
    for entry in entries.values():
        if entry.roles is not None:
            role_table.check_known(entry.roles, f"--tokens-file, principal {entry.principal!r}")
    return config


def _signing_keys(file: str) -> tuple[dict[str, bytes], dict[str, str], set[str]]:
    """``KEY_ID:SECRET [principal=P] [required]`` lines: the keys, the principal each
    bound key belongs to, and the keys their principal must sign with. ValueError
    naming the file and line, never a secret."""
    try:
        lines = Path(file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"--signing-keys-file {file}: {exc}") from None
    keys: dict[str, bytes] = {}
    principals: dict[str, str] = {}
    required: set[str] = set()
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key_id, sep, rest = line.partition(":")
        secret, *extra = rest.split() or [""]
        key_id = key_id.strip()
        if not sep or not key_id or len(secret.encode()) < 32:
            raise ValueError(f"--signing-keys-file {file} line {n}: expected KEY_ID:SECRET "
                             "with a secret of 32 bytes or more")
        keys[key_id] = secret.encode()
        for attr in extra:
            if attr.startswith("principal=") and len(attr) > len("principal="):
                principals[key_id] = attr.removeprefix("principal=")
            elif attr == "required":
                required.add(key_id)
            else:
                raise ValueError(f"--signing-keys-file {file} line {n}: unknown attribute "
                                 f"{attr.partition('=')[0]!r} (principal=P or required)")
        if key_id in required and key_id not in principals:
            raise ValueError(f"--signing-keys-file {file} line {n}: 'required' needs "
                             "principal=P")
    if not keys:
        raise ValueError(f"--signing-keys-file {file} holds no keys")
    return keys, principals, required
