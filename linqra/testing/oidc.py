"""A real OpenID provider for tests and benchmarks: node-oidc-provider
(``linqra/testing/oidc_server/server.mjs``) on a free loopback port, issuing RS256 JWT access
tokens with Keycloak-shaped claims.

The server runs from the source tree: ``scripts/ensure-oidc.sh`` (``make install-test``)
installs its one npm package from the lock file into ``linqra/testing/oidc_server/node_modules``.
The JavaScript files are not package data (an installed wheel does not ship them; a checkout
with ``pip install -e .`` is what tests and benchmarks use), and nothing in the core imports
this module. Node.js 20+ must be on the ``PATH``.

Each :class:`OidcClient` is a client_credentials client whose tokens carry the claims it
declares; :data:`DEFAULT_CLIENTS` are the people the test fixture ``oidc_provider`` knows::

    provider.token("alice")                      # a JWT for audience "linqra-gateway"
    provider.token("alice", audience=OTHER_AUDIENCE)
    OidcVerifier(provider.settings())            # a verifier that trusts this provider

Keys are RS256 JWKs made here, so a test can rotate them (:meth:`OidcProvider.rotate` restarts
the provider on the same port with ``[new, *old]``) or sign a forged token with the provider's
own key (:attr:`OidcProvider.signing_key`).
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from linqra.config import OidcSettings
from linqra.testing.servers import free_port

__all__ = [
    "AUDIENCE",
    "DEFAULT_CLIENTS",
    "OTHER_AUDIENCE",
    "OidcClient",
    "OidcProvider",
    "new_key",
    "public_jwk",
]

SERVER_DIR = Path(__file__).parent / "oidc_server"
AUDIENCE = "linqra-gateway"
OTHER_AUDIENCE = "other-api"


@dataclass(frozen=True)
class OidcClient:
    """A client_credentials client and the claims its access tokens carry (``None``: absent)."""

    client_id: str
    sub: str | None = None  # default: the client id, as the provider does
    username: str | None = None  # preferred_username
    realm_roles: list[str] | None = None  # realm_access.roles
    client_roles: dict[str, list[str]] | None = None  # resource_access.<client>.roles
    groups: list[str] | None = None
    teams: list[str] | None = None
    access_token_ttl: int | None = None  # seconds (default 300)
    not_before_seconds: int = 0  # > 0: nbf that far in the future
    extra_claims: dict[str, Any] = field(default_factory=dict)
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))


DEFAULT_CLIENTS: tuple[OidcClient, ...] = (
    # member of team-a through the `teams` claim (no role given)
    OidcClient("alice", sub="user-alice", username="alice", realm_roles=["user"], teams=["team-a"]),
    # admin of team-b and viewer of team-c through groups; one group outside /teams/
    OidcClient(
        "bob",
        sub="user-bob",
        username="bob",
        realm_roles=["user"],
        groups=["/teams/team-b/admin", "/teams/team-c/viewer", "/staff"],
    ),
    # member of team-a through a group, listed in team-b without a role
    OidcClient(
        "carol",
        sub="user-carol",
        username="carol",
        groups=["/teams/team-a/member"],
        teams=["team-b"],
    ),
    # the platform administrator (realm role gateway_admin), in no team
    OidcClient("root", sub="user-root", username="root", realm_roles=["gateway_admin", "user"]),
    # a machine client: roles of the gateway client and of another client (which never count)
    OidcClient(
        "svc",
        client_roles={AUDIENCE: ["auditor"], "account": ["manage-account"]},
        teams=["team-a"],
    ),
    # tokens that live 2 s (expiry tests)
    OidcClient("brief", sub="user-brief", teams=["team-a"], access_token_ttl=2),
    # tokens valid only from 60 s after they are issued
    OidcClient("later", sub="user-later", teams=["team-a"], not_before_seconds=60),
    # signed in, but in no team and without roles
    OidcClient("nobody", sub="user-nobody", username="nobody"),
)


def new_key(kid: str | None = None) -> dict[str, Any]:
    """A fresh RS256 private JWK (2048 bits) with a ``kid``."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(private, as_dict=True)
    jwk.pop("key_ops", None)  # PyJWT writes ["sign"]; the provider would publish it as is
    jwk.update(kid=kid or f"k-{secrets.token_hex(6)}", alg="RS256", use="sig")
    return jwk


def public_jwk(jwk: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}


class OidcProvider:
    """node-oidc-provider on 127.0.0.1, started and stopped by the test (a context manager).

    ``issuer`` is ``http://127.0.0.1:PORT``; the port stays the same across :meth:`restart`.
    """

    def __init__(
        self,
        clients: tuple[OidcClient, ...] | list[OidcClient] = DEFAULT_CLIENTS,
        *,
        audiences: tuple[str, ...] = (AUDIENCE, OTHER_AUDIENCE),
        keys: list[dict[str, Any]] | None = None,
        workdir: Path | None = None,
        ready_timeout: float = 60.0,
        browser_clients: dict[str, list[str]] | None = None,
    ) -> None:
        self.clients = {c.client_id: c for c in clients}
        # client id -> redirect URIs: public Authorization Code + PKCE clients (a web console),
        # signing in as one of ``clients`` on the provider's development login form
        self.browser_clients = browser_clients or {}
        self.audiences = audiences
        self.keys = keys if keys is not None else [new_key()]
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.jwks_uri = f"{self.issuer}/jwks"
        self.ready_timeout = ready_timeout
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="oidc-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(timeout=10)

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> Self:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed: the OIDC provider needs Node.js 20+")
        if not (SERVER_DIR / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError(
                "oidc-provider is not installed: run scripts/ensure-oidc.sh (make install-test)"
            )
        keys_file, config_file = self.workdir / "keys.json", self.workdir / "config.json"
        keys_file.write_text(json.dumps({"keys": self.keys}))
        config_file.write_text(json.dumps(self._config()))
        self.log = self.workdir / "server.log"
        with self.log.open("ab") as log:
            command = [node, str(SERVER_DIR / "server.mjs"), "--port", str(self.port)]
            command += ["--keys", str(keys_file), "--config", str(config_file)]
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=SERVER_DIR
            )
        self._wait_ready()
        return self

    def stop(self) -> None:
        """End the provider and wait until it is gone (its port refuses connections)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def restart(self, keys: list[dict[str, Any]] | None = None) -> Self:
        """Stop and start again on the same port, with ``keys`` when given."""
        self.stop()
        if keys is not None:
            self.keys = keys
        return self.start()

    def rotate(self) -> dict[str, Any]:
        """Sign with a new key from now on, still publishing the old ones; the new key."""
        key = new_key()
        self.restart([key, *self.keys])
        return key

    def close(self) -> None:
        self.stop()
        self._http.close()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- what tests use -----------------------------------------------------------------
    @property
    def signing_key(self) -> dict[str, Any]:
        """The private JWK the provider signs with now."""
        return self.keys[0]

    def token(self, client_id: str, *, audience: str = AUDIENCE) -> str:
        """An access token for ``client_id`` (client_credentials with a resource indicator)."""
        client = self.clients[client_id]
        response = self._http.post(
            f"{self.issuer}/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client.client_id,
                "client_secret": client.client_secret,
                "resource": _resource(audience),
            },
        )
        if response.status_code != 200:
            raise RuntimeError(f"token for {client_id}: {response.status_code} {response.text}")
        return str(response.json()["access_token"])

    def jwks_fetches(self) -> int:
        """How many times the provider has served its key set since it (re)started."""
        return int(self._http.get(f"{self.issuer}/__stats").json()["jwks"])

    def settings(self, **overrides: Any) -> OidcSettings:
        """Settings of a verifier that trusts this provider (discovery, audience, client)."""
        values: dict[str, Any] = {
            "issuer": self.issuer,
            "audience": [AUDIENCE],
            "client_id": AUDIENCE,
            "leeway_seconds": 0,
            "jwks_refresh_cooldown_seconds": 0,
            "http_timeout_seconds": 2,
        }
        return OidcSettings(**(values | overrides))

    # -- internals ------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        clients = []
        for c in self.clients.values():
            entry: dict[str, Any] = {"client_id": c.client_id, "client_secret": c.client_secret}
            for name in _CLAIM_FIELDS:
                if getattr(c, name) is not None:
                    entry[name] = getattr(c, name)
            if c.not_before_seconds:
                entry["not_before_seconds"] = c.not_before_seconds
            if c.extra_claims:
                entry["extra_claims"] = c.extra_claims
            clients.append(entry)
        resources = {_resource(a): {"audience": a} for a in self.audiences}
        browser = [{"client_id": k, "redirect_uris": v} for k, v in self.browser_clients.items()]
        return {"resources": resources, "clients": clients, "browser_clients": browser}

    def _wait_ready(self) -> None:
        """Until discovery answers with our issuer (the process may take seconds to load)."""
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout
        url = f"{self.issuer}/.well-known/openid-configuration"
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"oidc-provider exited with {self.proc.returncode}: {self._log_tail()}"
                )
            try:
                response = self._http.get(url, timeout=1)
                if response.status_code == 200 and response.json()["issuer"] == self.issuer:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"oidc-provider not ready after {self.ready_timeout}s")
            time.sleep(0.05)

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"


_CLAIM_FIELDS = (
    "sub",
    "username",
    "realm_roles",
    "client_roles",
    "groups",
    "teams",
    "access_token_ttl",
)


def _resource(audience: str) -> str:
    return f"urn:linqra:audience:{audience}"
