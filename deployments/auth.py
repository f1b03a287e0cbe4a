"""Who may call each route: the request's principal, the permission a route declares, and the
audit trail of what was refused or changed.

Every route names exactly one of these in its signature
(``tests/test_access.py::test_every_route_declares_one_permission`` reads the app's routes and
fails on a route without one):

* ``Viewer`` / ``Member`` / ``Runner`` / ``Admin`` / ``AccessAdmin`` — the caller's
  :class:`~linqra.auth.principal.Principal`, once it holds ``read`` / ``write`` / ``execute``
  / ``admin`` / ``manage_access`` (see the table in :mod:`linqra.auth.principal`);
* ``dependencies=[PUBLIC]`` — no credential (``/healthz``, the docs; a signed webhook checks
  its own signature).

``Annotated[Principal, Depends(Require(permission, "budget.set"))]`` is the same check that also
writes an audit event for the request, with its final status. Every 401 and 403 is audited
too (:class:`AuditTrail`).
"""

# no "from __future__ import annotations": FastAPI reads these annotations at runtime

import ipaddress
from collections.abc import Mapping, Sequence
from functools import cache
from ipaddress import IPv4Network, IPv6Network
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.errors import request_id
from linqra import logs
from linqra.auth.authenticator import Credentials
from linqra.auth.principal import Permission, Principal
from linqra.errors import Forbidden, Unauthenticated
from linqra.ratelimit import Decision, Hit
from linqra.system import System

__all__ = [
    "PUBLIC",
    "AccessAdmin",
    "Admin",
    "AuditTrail",
    "Member",
    "Require",
    "Runner",
    "Viewer",
    "audited",
    "client_ip",
    "document_principal",
    "identify",
    "principal",
    "rate_limit_headers",
    "record_audit",
    "route_permission",
]

_bearer = HTTPBearer(auto_error=False, description="an OIDC access token or an API key")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key lq_…")


async def principal(request: Request) -> Principal:
    """The caller, from exactly one credential (built once per request).

    It reads ``Authorization``, ``X-API-Key`` and ``X-Team-Id`` from the request itself: as
    FastAPI parameters and security dependencies they cost three more dependencies to solve on
    every request (a quarter of what FastAPI spends on a read's dependencies), for what is only
    documentation. The schema still lists them on every route that needs a principal:
    :func:`document_principal` puts them where FastAPI put them.
    """
    system: System = request.app.state.system
    try:
        found, tightest = await identify(
            system,
            request.scope,
            request.headers,
            team=request.headers.get("x-team-id") or None,  # an empty header is no header
        )
    except Forbidden as exc:  # signed in, refused a team: the audit says who, which
        request.state.refused = (getattr(exc, "team", None), getattr(exc, "actor", None))
        raise
    if tightest is not None:
        request.state.rate_limit = tightest
    request.state.principal = found
    logs.also(team=found.team_id)  # on the request's log lines from here on
    return found


async def _documented_principal(
    _bearer_doc: Annotated[Any, Depends(_bearer)],
    _key_doc: Annotated[Any, Depends(_api_key)],
    x_team_id: Annotated[
        str | None,
        Header(
            alias="X-Team-Id",
            description="the team to act for: required in header mode, else one of yours",
        ),
    ] = None,
) -> None:
    """What :func:`principal` reads, declared as FastAPI documents it (never called)."""


@cache
def _principal_schema() -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """The ``X-Team-Id`` parameter, the operation's ``security`` and the security schemes,
    as FastAPI writes them for an operation depending on :func:`_documented_principal`."""
    stub = FastAPI()

    @stub.get("/")
    async def operation(_: Annotated[None, Depends(_documented_principal)]) -> None:
        """A stub."""

    schema = stub.openapi()
    described = schema["paths"]["/"]["get"]
    return (
        described["parameters"][0],
        described["security"],
        schema["components"]["securitySchemes"],
    )


def document_principal(schema: dict[str, Any], routes: Sequence[APIRoute]) -> None:
    """Put what :func:`principal` reads into the OpenAPI ``schema`` of ``routes``: on each
    operation that depends on it, the ``X-Team-Id`` header parameter where FastAPI lists a
    dependency's header parameters (depth first, each dependency once, as
    ``fastapi.openapi.utils`` walks them) and the two security schemes."""
    team, security, schemes = _principal_schema()
    paths = schema.get("paths", {})
    used = False
    for route in routes:
        index = _team_header_index(route)
        if index is None:
            continue
        for method in route.methods or ():
            operation = paths.get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            used = True
            params: list[dict[str, Any]] = operation.setdefault("parameters", [])
            headers = [i for i, p in enumerate(params) if p.get("in") == "header"]
            if index < len(headers):
                at = headers[index]
            elif headers:
                at = headers[-1] + 1
            else:
                at = sum(1 for p in params if p.get("in") in ("path", "query"))
            params.insert(at, dict(team))
            operation["security"] = [dict(s) for s in security]
    if used:
        schema.setdefault("components", {})["securitySchemes"] = dict(schemes)


def _team_header_index(route: APIRoute) -> int | None:
    """How many header parameters FastAPI lists before :func:`principal`'s on ``route``;
    ``None`` when the route does not depend on it."""
    before = 0
    seen: set[Any] = set()
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        if dependant.call is not None:
            if dependant.call in seen:
                continue
            seen.add(dependant.call)
        if dependant.call is principal:
            return before
        before += sum(
            1 for p in dependant.header_params if getattr(p.field_info, "include_in_schema", True)
        )
        stack.extend(reversed(dependant.dependencies))
    return None


async def identify(
    system: System, scope: Scope, headers: Mapping[str, str], *, team: str | None
) -> tuple[Principal, Decision | None]:
    """The caller of a request or a WebSocket handshake, with its rate limits spent, and the
    decision closest to its limit (``None`` when limits are off). Refused sign-ins and refused
    teams count against the address's ``failed_auth`` limit, and an address over it is refused
    before its credential is even checked."""
    rules, limiter = system.rate_limits, system.limiter
    limited = system.settings.rate_limits.enabled
    ip = client_ip(scope, system.settings.auth.trusted_proxies) or "unknown"
    if limited:  # an address that keeps failing is refused before its next try is checked
        (await limiter.peek(rules.failed_auth, ip)).raise_if_denied()
    try:
        found = await system.authenticator.authenticate(
            Credentials(
                authorization=headers.get("authorization"),
                api_key=headers.get("x-api-key"),
                team=team,
                origin=headers.get("origin"),
            )
        )
    except (Unauthenticated, Forbidden):
        if limited:  # refused sign-ins and refused teams count alike: neither may flood the log
            await limiter.hit(rules.failed_auth, ip)
        raise
    if not limited:
        return found, None
    # a widget key's rules narrowest first, each refusing before the next is spent: one
    # address with a public key cannot use up its team's requests
    decisions: list[Decision] = []
    if found.source == "widget":  # a public key: its address first, then the key
        decisions.append(await limiter.hit(rules.widget, f"{found.key_id}|{ip}"))
        decisions[-1].raise_if_denied()
        decisions.append(await limiter.hit(rules.api_key, found.key_id or ""))
        decisions[-1].raise_if_denied()
        decisions.append(await limiter.hit(rules.team, found.team_id))
    elif found.key_id is not None:  # the team's own key: both limits in one round trip
        decisions += await limiter.hit_many(
            [Hit(rules.api_key, found.key_id), Hit(rules.team, found.team_id)]
        )
    else:
        decisions.append(await limiter.hit(rules.team, found.team_id))
    for decision in decisions:
        decision.raise_if_denied()
    return found, min(decisions, key=lambda d: d.remaining / d.limit)


class Require:
    """A route's permission, checked against the request's principal. A public widget key is
    refused unless the route says ``widget=True`` (the chat routes of the one assistant or
    workflow the key is bound to, where it needs its one scope, ``execute``, whatever the route
    asks of team credentials): that scope is not a licence to run anything else."""

    def __init__(
        self, permission: Permission, action: str | None = None, *, widget: bool = False
    ) -> None:
        self.permission = permission
        self.action = action
        self.widget = widget

    async def __call__(
        self, request: Request, caller: Annotated[Principal, Depends(principal)]
    ) -> Principal:
        if self.action is not None or caller.cross_team:
            request.state.audit_action = self.action or "platform_admin.access"
        if caller.source == "widget":  # its one scope, execute, is what a widget route needs
            if not self.widget:
                raise Forbidden("a widget key serves only its widget's chat routes")
            return caller.require(Permission.EXECUTE)
        return caller.require(self.permission)


async def public() -> None:
    """Marks a route that takes no credential (``async``: no thread-pool hop)."""


PUBLIC = Depends(public)
Viewer = Annotated[Principal, Depends(Require(Permission.READ))]
Member = Annotated[Principal, Depends(Require(Permission.WRITE))]
Runner = Annotated[Principal, Depends(Require(Permission.EXECUTE))]
Admin = Annotated[Principal, Depends(Require(Permission.ADMIN))]
AccessAdmin = Annotated[Principal, Depends(Require(Permission.MANAGE_ACCESS))]


def route_permission(route: APIRoute) -> str | None:
    """The permission ``route`` declares, ``None`` for a public one; ``LookupError`` when it
    declares neither (every route must)."""
    stack = list(route.dependant.dependencies)
    found: set[str | None] = set()
    while stack:
        dep = stack.pop()
        if isinstance(dep.call, Require):
            found.add(dep.call.permission.value)
        elif dep.call is public:
            found.add(None)
        stack.extend(dep.dependencies)
    if len(found) != 1:
        raise LookupError(
            f"{sorted(route.methods or ())} {route.path} declares {len(found)} permissions: name "
            "exactly one of Viewer, Member, Runner, Admin, AccessAdmin or PUBLIC"
        )
    return found.pop()


def client_ip(scope: Scope, trusted: Sequence[IPv4Network | IPv6Network]) -> str | None:
    """The peer's address; the first untrusted hop of ``X-Forwarded-For`` when the peer is a
    trusted proxy (``auth.trusted_proxies``), so a client cannot pick its own address."""
    client = scope.get("client")
    peer: str | None = str(client[0]) if client else None
    if peer is None or not trusted:
        return peer

    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in trusted)

    if not is_trusted(peer):
        return peer
    hops = [  # every X-Forwarded-For header, in order (a proxy may add its own line)
        hop.strip()
        for name, value in scope.get("headers") or ()
        if name == b"x-forwarded-for"
        for hop in value.decode("latin-1").split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):  # the nearest address no trusted proxy vouches for
        if not is_trusted(hop):
            return str(hop)
    return str(hops[0]) if hops else peer


def rate_limit_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The request's ``X-RateLimit-*`` response headers (raw), from the decision its
    principal left in ``scope["state"]``; none without one."""
    decision = (scope.get("state") or {}).get("rate_limit")
    if decision is None:
        return []
    return [(k.lower().encode(), v.encode()) for k, v in decision.headers().items()]


class AuditTrail:
    """After each response: an audit event for every 401 and 403, and for every request
    whose route names an audit action or which a platform admin made on another team. Also
    puts the request's ``X-RateLimit-*`` headers on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = rate_limit_headers(scope)
                if extra:
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            await record_audit(scope, status)


def audited(scope: Scope, status: int) -> bool:
    """Whether a request answered ``status`` gets an audit event: every 401 and 403, and a
    success whose route names an audit action (refused input changed nothing, and a 429 flood
    must not become store writes)."""
    if status in (401, 403):
        return True
    return status < 400 and (scope.get("state") or {}).get("audit_action") is not None


async def record_audit(scope: Scope, status: int) -> None:
    """The audit event of a request answered ``status``, if it needs one (see
    :class:`AuditTrail`)."""
    if not audited(scope, status):
        return
    state = scope.get("state") or {}
    action = state.get("audit_action")
    if status in (401, 403):
        action = action if action == "platform_admin.access" else None
    app = scope.get("app")
    system: System | None = getattr(getattr(app, "state", None), "system", None)
    if system is None:
        return
    caller: Principal | None = state.get("principal")
    refused_team, refused_actor = state.get("refused") or (None, None)
    route = scope.get("route")
    path = getattr(route, "path", None) or scope.get("path", "")
    if action is None:
        action = "auth.failed" if status == 401 else "access.denied"
    denied = status in (401, 403)
    outcome = "success" if status < 400 else ("denied" if denied else "failure")
    details: dict[str, Any] = dict(scope.get("path_params") or {})
    if caller is not None and caller.cross_team:
        details["cross_team"] = True
    if refused_team is not None:  # kept out of that team's own log: nobody floods it
        details["team"] = refused_team
    await system.audit.record(
        team=caller.team_id if caller else None,
        actor=caller.actor if caller else (refused_actor or "anonymous"),
        source=caller.source if caller else None,
        action=action,
        resource=f"{scope.get('method', '')} {path}",
        outcome=outcome,
        status=status,
        client_ip=client_ip(scope, system.settings.auth.trusted_proxies),
        request_id=request_id(scope),
        details=details,
    )
