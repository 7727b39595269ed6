"""The security settings of a server, and the parts built from them: the
`Authenticator` (identities and roles), the `RateLimiter` and the CORS settings.

Apart from `runtime.server` so the server's wiring stays one small addition; every
setting is described in docs/security.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs

from protocol.permissions import RoleTable
from runtime.http.auth import TokenAuth, TokenEntry
from runtime.http.card import CardDocument
from runtime.http.card_signing import CardSigner
from runtime.http.common import AppState, ASGIApp
from runtime.http.cors import Cors, CorsSettings
from runtime.http.identity import Authenticator, IdentityTokenAuth
from runtime.http.jwt_auth import JwtSettings, JwtVerifier
from runtime.http.rate_limit import RateLimit, RateLimiter
from runtime.http.request_signing import SignatureCheck
from runtime.http.revocations import open_revocations
from runtime.http.signing_settings import SigningSettings
from runtime.http.token_routes import token_methods, token_routes
from runtime.http.token_service import TokenService, TokenServiceSettings

__all__ = ["Secured", "SecurityConfig", "build_authenticator", "build_rate_limiter",
           "open_security", "open_token_service"]


@attrs.frozen
class SecurityConfig:
    """Identities, roles, limits and CORS; the defaults change nothing of plain token auth."""

    token_entries: Mapping[str, TokenEntry] = attrs.field(factory=dict)
    """Roles and tenant of static tokens, by token (tokens of `ServerConfig.tokens`
    without an entry get `default_roles` and no tenant)."""
    jwt: JwtSettings | None = None
    """Accept JWT bearer tokens (an identity provider's, or signed with a shared secret)."""
    roles: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    """More roles, or built-in ones redefined: name -> permissions."""
    default_roles: tuple[str, ...] = ("operator",)
    """Roles of a static token without `roles=`."""
    anonymous_roles: tuple[str, ...] = ("operator",)
    """Roles of every caller while auth is off."""
    rate_limit: RateLimit | None = None
    """Requests per principal (within its tenant); None: unlimited."""
    tenant_rate_limit: RateLimit | None = None
    """Requests per tenant, all its principals together; None: unlimited."""
    cors: CorsSettings | None = None
    """Cross-origin requests from browsers; None: no CORS headers (browsers refuse)."""
    token_service: TokenServiceSettings | None = None
    """The built-in token service (API key -> access and refresh tokens); None: off."""
    request_signing: SigningSettings | None = None
    """HMAC request signatures: checked when present, required if so set; None: off."""
    card_signer: CardSigner | None = None
    """Sign the agent card (JWS in `signatures`); None: unsigned."""

    def role_table(self) -> RoleTable:
        return RoleTable(self.roles)


def build_authenticator(security: SecurityConfig, tokens: Mapping[str, str],
                        workers: TokenAuth) -> Authenticator:
    """The server's authenticator; ValueError (at start) for an unknown role."""
    entries: dict[str, str | TokenEntry] = {
        t: security.token_entries.get(t, TokenEntry(p)) for t, p in tokens.items()}
    return Authenticator(
        entries, workers=workers,
        jwt=JwtVerifier(security.jwt) if security.jwt is not None else None,
        roles=security.role_table(), default_roles=security.default_roles,
        anonymous_roles=security.anonymous_roles)


def build_rate_limiter(security: SecurityConfig) -> RateLimiter | None:
    if security.rate_limit is None and security.tenant_rate_limit is None:
        return None
    return RateLimiter(principal=security.rate_limit, tenant=security.tenant_rate_limit)


@asynccontextmanager
async def open_token_service(security: SecurityConfig, authenticator: Authenticator, *,
                             store: str, sqlite_file: Path | None
                             ) -> AsyncIterator[TokenService | None]:
    """The token service, its revocations kept in the task store's database, and its
    access tokens accepted by `authenticator`; None when it is off."""
    settings = security.token_service
    if settings is None:
        yield None
        return
    if store == "postgres":
        raise ValueError("the token service keeps its revocations in SQLite or memory for "
                         "now; it cannot run with --store postgres")
    async with open_revocations(sqlite_file if store == "sqlite" else None) as revocations:
        service = TokenService(settings, revocations, authenticator.api_key)
        authenticator.issuers.append(service.identify)
        yield service



@attrs.frozen
class Secured:
    """What the server serves with: its authenticator, its token service (or None), and
    the wrapping of its state, app and card that the security settings ask for."""

    security: SecurityConfig
    authenticator: Authenticator
    tokens: TokenService | None
    token_auth: TokenAuth
    """The principal-only view the gRPC and /mcp bindings use (`IdentityTokenAuth`)."""

    @property
    def enabled(self) -> bool:
        return self.authenticator.enabled

    @property
    def auth_schemes(self) -> tuple[str, ...]:
        return ("bearer",) if self.enabled else ()

    def card(self, document: CardDocument) -> CardDocument:
        signer = self.security.card_signer
        return signer.sign(document) if signer is not None else document

    def state(self, state: AppState) -> AppState:
        """`state` with the identities, limits, signing keys and token service."""
        tokens = self.tokens
        state = attrs.evolve(state, authenticator=self.authenticator,
                             rate_limiter=build_rate_limiter(self.security),
                             signing=self.security.request_signing,
                             extension_methods=token_methods(tokens) if tokens else {})
        if tokens is None:
            return state
        served = attrs.evolve(state, routes=(*state.routes,
                                             token_routes(tokens, lambda: served)))
        return served

    def app(self, app: ASGIApp, max_body: int) -> ASGIApp:
        """`app` behind the request-signature check and CORS, when configured."""
        if self.security.request_signing is not None:
            app = SignatureCheck(self.security.request_signing, app, max_body=max_body)
        if self.security.cors is not None:
            app = Cors(self.security.cors, app)
        return app


@asynccontextmanager
async def open_security(config: Any) -> AsyncIterator[Secured]:
    """The security of a `ServerConfig` (its `security`, `tokens`, `worker_tokens`,
    `store` and `data_dir`): ValueError for an unknown role; the token service open
    while the block runs."""
    authenticator = build_authenticator(config.security, config.tokens,
                                        TokenAuth(config.worker_tokens))
    async with open_token_service(config.security, authenticator, store=config.store,
                                  sqlite_file=Path(config.data_dir) / "tasks.sqlite3"
                                  ) as tokens:
        yield Secured(config.security, authenticator, tokens,
                      IdentityTokenAuth(config.tokens, authenticator))
