"""The security settings of a server, and the parts built from them: the
`Authenticator` (identities and roles), the `RateLimiter` and the CORS settings.

Apart from `runtime.server` so the server's wiring stays one small addition; every
setting is described in docs/security.md.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
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
from runtime.http.identity import Authenticator
from runtime.http.jwt_auth import JwtSettings, JwtVerifier
from runtime.http.rate_limit import RateLimit, RateLimiter
from runtime.http.request_signing import RequestVerifier, SignatureCheck
from runtime.http.revocations import open_revocations
from runtime.http.signing_settings import SigningSettings
from runtime.http.token_routes import token_methods, token_routes
from runtime.http.token_service import TokenService, TokenServiceSettings

__all__ = ["Secured", "SecurityConfig", "build_authenticator", "build_rate_limiter",
           "link_closed", "nonce_state", "open_security", "open_token_service", "shared_state",
           "worker_link_refusal"]


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
    default_roles: tuple[str, ...] = ("client",)
    """Roles of a static token without `roles=`."""
    anonymous_roles: tuple[str, ...] = ("client",)
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
    worker_identities: bool = False
    """Let identities (static tokens, JWTs, token-service tokens) whose roles grant
    `worker.link` (agent, admin) and that have no tenant connect workers, beside the
    worker tokens (`--worker-identities`)."""

    def role_table(self) -> RoleTable:
        return RoleTable(self.roles)


def link_closed(config: Any) -> bool:
    """Client auth is on and the worker link has no tokens of its own, nor leave to be
    open: then it takes only identities holding `worker.link`, if configured to."""
    client_auth = bool(config.tokens) or config.security.jwt is not None
    return client_auth and not config.worker_tokens and not config.open_worker_link


def worker_link_refusal(config: Any) -> str | None:
    """Why the server must not start with this worker link (one line naming the
    flags that fix it), or None.

    With client auth on, a worker link without worker credentials would hand any
    principal's task to whoever connects. When only remote workers could run the
    tasks (no embedded ones), that is a configuration error; with embedded workers
    the link stays closed to remote ones instead (`runtime.link.endpoint`)."""
    if link_closed(config) and config.local_workers == 0 and not (
            config.security.worker_identities):
        return ("client tokens are set but no worker tokens, and without them anyone could "
                "take tasks on the worker link: give worker tokens with --worker-tokens-file "
                "(or TRIO_A2A_WORKER_TOKENS; ServerConfig.worker_tokens), let identities "
                "holding 'worker.link' connect workers with --worker-identities, or pass "
                "--open-worker-link (ServerConfig.open_worker_link) to leave the link open "
                "on purpose")
    return None


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


def nonce_state(store: str, backend: Any, shared: Any) -> Any:
    """Where request-signing nonces are kept: in the database the replicas share
    (`shared`), in the SQLite store's file (`SQLiteNonces`, across restarts), or, for
    the memory store (whose tasks vanish on restart too), None: in this process."""
    if shared is not None:
        return shared
    if store != "sqlite" or backend is None:
        return None
    from runtime.store.sqlite_security import SQLiteNonces

    return SQLiteNonces(backend)


def shared_state(store: str, backend: Any) -> Any:
    """What the replicas of one database share for the security model (revocations,
    nonces): `PostgresSecurityState` with --store postgres; None for a store of one
    process (memory, SQLite), where this process's own state is the whole truth."""
    if store != "postgres" or backend is None:
        return None
    from runtime.store.postgres_security import PostgresSecurityState  # psycopg: postgres only

    return PostgresSecurityState(backend)


@asynccontextmanager
async def open_token_service(security: SecurityConfig, authenticator: Authenticator, *,
                             store: str, sqlite_file: Path | None, shared: Any = None
                             ) -> AsyncIterator[TokenService | None]:
    """The token service, its revocations kept in the task store's database (`shared`
    for PostgreSQL, else the SQLite file), and its access tokens accepted by
    `authenticator`; None when it is off."""
    settings = security.token_service
    if settings is None:
        yield None
        return
    if store == "postgres" and shared is None:
        raise ValueError("the token service with --store postgres needs the store's "
                         "database to keep its revocations in")
    async with open_revocations(sqlite_file if store == "sqlite" else None,
                                shared=shared) as revocations:
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
    """The static client tokens by principal alone (the worker link refuses them)."""
    shared: Any = None
    """Where request-signing nonces are kept (`nonce_state`); None: this process."""
    verifier: RequestVerifier | None = None
    """The request-signature check of every binding (HTTP and gRPC); None: off."""

    @property
    def enabled(self) -> bool:
        return self.authenticator.enabled

    @property
    def auth_schemes(self) -> tuple[str, ...]:
        return ("bearer",) if self.enabled else ()

    @property
    def worker_identities(self) -> Callable[[str | None], Awaitable[str | None]] | None:
        """The worker link's check of identities (`SecurityConfig.worker_identities`):
        the principal of a credential whose roles grant `worker.link` and that has no
        tenant (a worker runs every tenant's tasks), else None; None when off."""
        authn = self.authenticator
        if not self.security.worker_identities or not authn.enabled:
            return None

        async def principal(authorization: str | None) -> str | None:
            identity = await authn.identify(authorization)
            if identity is None or identity.via == "anonymous" or identity.tenant:
                return None
            if not authn.roles.allows(identity.roles, "worker.link"):
                return None
            return identity.principal

        return principal

    def card(self, document: CardDocument) -> CardDocument:
        signer = self.security.card_signer
        return signer.sign(document) if signer is not None else document

    def state(self, state: AppState) -> AppState:
        """`state` with the identities, limits, signing keys and token service."""
        tokens = self.tokens
        limiter = build_rate_limiter(self.security)
        state = attrs.evolve(state, authenticator=self.authenticator,
                             rate_limiter=limiter,
                             signing=self.security.request_signing,
                             signature_verifier=self.verifier,
                             extension_methods=token_methods(tokens, limiter) if tokens
                             else {})
        if tokens is None:
            return state
        served = attrs.evolve(state, routes=(*state.routes,
                                             token_routes(tokens, lambda: served, limiter)))
        return served

    def app(self, app: ASGIApp, max_body: int) -> ASGIApp:
        """`app` behind the request-signature check and CORS, when configured."""
        if self.security.request_signing is not None:
            app = SignatureCheck(self.security.request_signing, app, max_body=max_body,
                                 shared=self.shared, verifier=self.verifier)
        if self.security.cors is not None:
            app = Cors(self.security.cors, app)
        return app


@asynccontextmanager
async def open_security(config: Any, backend: Any = None) -> AsyncIterator[Secured]:
    """The security of a `ServerConfig` (its `security`, `tokens`, `worker_tokens`,
    `store` and `data_dir`) over the task store's `backend`: ValueError for an unknown
    role; the token service open while the block runs."""
    authenticator = build_authenticator(config.security, config.tokens,
                                        TokenAuth(config.worker_tokens))
    shared = shared_state(config.store, backend)
    async with open_token_service(config.security, authenticator, store=config.store,
                                  sqlite_file=Path(config.data_dir) / "tasks.sqlite3",
                                  shared=shared) as tokens:
        nonces = nonce_state(config.store, backend, shared)
        signing = config.security.request_signing
        verifier = None
        if signing is not None:
            if nonces is not None:  # what earlier runs left past keeping
                await nonces.prune_nonces(time.time() - 2 * signing.window)
            verifier = RequestVerifier(signing, shared=nonces)
        yield Secured(config.security, authenticator, tokens,
                      TokenAuth(config.tokens), nonces, verifier)
