"""Request-scoped dependencies, as ``Annotated`` aliases the routes take as parameters."""

from __future__ import annotations

import hmac
import re
import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from imagegate.errors import AuthenticationError
from imagegate.services.accounts import Principal
from imagegate.services.container import Services
from imagegate.services.ratelimit import Action

_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
_api_key = APIKeyHeader(
    name="Authorization",
    auto_error=False,
    description="the API key, raw or as 'Bearer <key>'",
)


# Dependencies are async even where they do not await: FastAPI runs sync ones in a thread.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_principal(
    services: ServicesDep, authorization: Annotated[str | None, Depends(_api_key)]
) -> Principal:
    return await services.accounts.authenticate(authorization)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


_admin_key = APIKeyHeader(
    name="Authorization",
    scheme_name="AdminKey",
    auto_error=False,
    description="the admin key (IMAGEGATE_ADMIN_KEY), raw or as 'Bearer <key>'",
)


async def require_admin(
    services: ServicesDep, authorization: Annotated[str | None, Depends(_admin_key)]
) -> None:
    expected = services.settings.admin_key
    if not expected:
        raise AuthenticationError("the admin API is off: set IMAGEGATE_ADMIN_KEY to use it")
    token = (authorization or "").strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    # Constant time, so the key cannot be guessed a character at a time.
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise AuthenticationError("the admin key is missing or invalid")


AdminDep = Depends(require_admin)


async def _counted(
    request: Request, services: Services, principal: Principal, action: Action
) -> Principal:
    quota = await services.ratelimit.hit(principal, action)
    if quota is not None:
        # Read by the RateLimitHeaders middleware when the response starts.
        request.state.rate_limit_headers = quota.headers(time.time())
    return principal


async def get_submitter(
    request: Request, services: ServicesDep, principal: PrincipalDep
) -> Principal:
    return await _counted(request, services, principal, "submit")


async def get_reader(request: Request, services: ServicesDep, principal: PrincipalDep) -> Principal:
    return await _counted(request, services, principal, "read")


# The caller of a submit, or of a read, counted against its rate limits (429 past them).
SubmitterDep = Annotated[Principal, Depends(get_submitter)]
ReaderDep = Annotated[Principal, Depends(get_reader)]


async def get_base_url(request: Request, services: ServicesDep) -> str:
    """The URL clients reach this server by: the configured public base URL, else what a
    proxy says in X-Forwarded-*, else the request's own."""
    settings = services.settings
    if settings.public_base_url:
        return settings.public_base_url
    root = request.scope.get("root_path", "").rstrip("/")
    headers = request.headers
    if settings.trust_forwarded_headers:
        host = headers.get("x-forwarded-host", "").split(",")[0].strip()
        proto = headers.get("x-forwarded-proto", "").split(",")[0].strip()
        prefix = headers.get("x-forwarded-prefix", "").split(",")[0].strip().rstrip("/")
        if host and not _HOST.match(host):
            host = ""
        if host or proto:
            scheme = proto if proto in ("http", "https") else request.url.scheme
            return f"{scheme}://{host or request.url.netloc}{prefix}{root}"
    return f"{request.url.scheme}://{request.url.netloc}{root}"


BaseUrlDep = Annotated[str, Depends(get_base_url)]
