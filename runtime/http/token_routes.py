"""The token service on the wire: JSON-RPC methods `trio-a2a/tokens.login`, `.refresh`,
`.logout`, `.verify` (both generations) and HTTP+JSON `POST /tokens:login`, ... with the
same params as JSON bodies and the same results. Login and refresh are public (the API
key or refresh token is the credential); logout needs `token.manage`, verify
`token.verify`. Login and refresh take from the rate limits themselves: the presented
key's or token's principal, or for a failed one the client's address
(`TokenService.login`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio

from protocol.errors import A2AError, InvalidRequestError, ParseError
from protocol.identity import Identity
from protocol.security_errors import RateLimitedError
from runtime.http.auth import RepeatedAuthorization, one_authorization
from runtime.http.common import AppState, json_response, unauthorized
from runtime.http.extension_methods import ANONYMOUS_CALLER, ExtensionMethod, client_address
from runtime.http.gate import authorize, identify
from runtime.http.rate_limit import RateLimiter
from runtime.http.signing_settings import SIGNED_BY
from runtime.http.token_service import TokenService

__all__ = ["NAMESPACE", "token_methods", "token_routes"]

NAMESPACE = "trio-a2a/tokens."


def token_methods(service: TokenService, limits: RateLimiter | None = None
                  ) -> dict[str, ExtensionMethod]:
    """The service's methods; login and refresh take from `limits` (the server's rate
    limiter, shared with every other call) themselves."""
    async def login(params: dict[str, Any], _: Identity, address: str) -> Any:
        return await service.login(params, limits=limits, address=address)

    async def refresh(params: dict[str, Any], _: Identity, address: str) -> Any:
        return await service.refresh(params, limits=limits, address=address)

    async def logout(params: dict[str, Any], who: Identity, _: str) -> Any:
        return await service.logout(who, params)

    async def verify(params: dict[str, Any], _: Identity, __: str) -> Any:
        return await service.verify(params)

    return {NAMESPACE + "login": ExtensionMethod(login, own_limits=True),
            NAMESPACE + "refresh": ExtensionMethod(refresh, own_limits=True),
            NAMESPACE + "logout": ExtensionMethod(logout, "token.manage"),
            NAMESPACE + "verify": ExtensionMethod(verify, "token.verify")}


def token_routes(service: TokenService, state_of: Callable[[], AppState],
                 limits: RateLimiter | None = None) -> Callable[[QuartTrio], None]:
    """Routes adding `POST /tokens:<op>` for each method of `token_methods`."""
    methods = token_methods(service, limits)

    def add(app: QuartTrio) -> None:
        for name, method in methods.items():
            op = name.removeprefix(NAMESPACE)
            app.add_url_rule(f"/tokens:{op}", f"tokens_{op}", _view(method, state_of),
                             methods=["POST"])

    return add


def _view(method: ExtensionMethod, state_of: Callable[[], AppState]) -> Callable[..., Any]:
    async def view() -> Response:
        state = state_of()
        try:
            authorization = one_authorization(request.headers.getlist("Authorization"))
            identity = await identify(state, authorization)
            if identity is None:
                if method.permission is not None:
                    return unauthorized()
                identity = ANONYMOUS_CALLER
            authorize(state, identity, method.permission, f"POST {request.path}",
                      signed_by=request.scope.get(SIGNED_BY), limit=not method.own_limits)
            data = await request.get_data(cache=False)
            try:
                params = json.loads(data) if data.strip() else {}
            except ValueError as exc:
                raise ParseError(f"Invalid JSON payload: {exc}") from None
            if not isinstance(params, dict):
                raise InvalidRequestError("the request body must be a JSON object")
            return Response(await method(params, identity, client_address(request.scope)),
                            status=200,
                            content_type="application/json")
        except RepeatedAuthorization as exc:
            return _error(InvalidRequestError(str(exc)))
        except A2AError as err:
            return _error(err)

    view.__name__ = f"tokens_{id(method)}"
    return view


def _error(err: A2AError) -> Response:
    status, body = err.to_http()
    headers = {"Retry-After": str(err.retry_seconds)} if isinstance(err, RateLimitedError) \
        else None
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="a2a"'}
    return json_response(body, status=status, headers=headers)
