"""The JWT verifier (:mod:`linqra.auth.oidc`) against a real OpenID provider (node-oidc-provider).

Tokens come from the provider through client_credentials; forged tokens are signed here only in
the attack tests that need one (``alg: none``, HS256 with the public key, a foreign key, a token
lacking ``exp``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import pickle
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm

from linqra.auth import Identity, InvalidToken, OidcVerifier
from linqra.errors import Unauthenticated, Unavailable
from linqra.testing.oidc import (
    DEFAULT_CLIENTS,
    OTHER_AUDIENCE,
    OidcClient,
    OidcProvider,
    new_key,
    public_jwk,
)


@pytest.fixture
async def verifier(oidc_provider: OidcProvider) -> AsyncIterator[OidcVerifier]:
    v = OidcVerifier(oidc_provider.settings())
    yield v
    await v.aclose()


@pytest.fixture
def own_provider(tmp_path: Any) -> Iterator[OidcProvider]:
    """A provider of this test's own, to restart with other keys or stop."""
    with OidcProvider(DEFAULT_CLIENTS, workdir=tmp_path) as provider:
        yield provider


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def _sign(claims: dict[str, Any], jwk: dict[str, Any]) -> str:
    """A token signed here with ``jwk`` (a private RS256 JWK), whatever its claims hold (PyJWT's
    own encoder refuses some of the bad values these tests need)."""
    header = {"alg": "RS256", "typ": "at+jwt", "kid": jwk["kid"]}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    algorithm = RSAAlgorithm(RSAAlgorithm.SHA256)
    signature = algorithm.sign(signing_input.encode(), algorithm.from_jwk(jwk))  # type: ignore[arg-type]
    return f"{signing_input}.{_b64(signature)}"


async def _refused(verifier: OidcVerifier, token: str, reason: str) -> InvalidToken:
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    err = caught.value
    assert reason in err.message
    assert (err.status, err.code) == (401, "invalid_token")
    assert all(part not in str(err) for part in token.split(".") if len(part) > 8)
    return err


# -- valid tokens ------------------------------------------------------------------------
async def test_each_client_shape_maps_to_its_identity(
    oidc_provider: OidcProvider, verifier: OidcVerifier
) -> None:
    alice = await verifier.verify(oidc_provider.token("alice"))
    assert (alice.user_id, alice.username) == ("user-alice", "alice")
    assert alice.roles == {"user"} and not alice.platform_admin
    assert alice.teams == {"team-a": None}
    assert alice.token_id
    assert 0 < (alice.expires_at - datetime.now(UTC)).total_seconds() <= 300

    bob = await verifier.verify(oidc_provider.token("bob"))
    assert bob.user_id == "user-bob"
    assert bob.teams == {"team-b": "admin", "team-c": "viewer"}  # /staff is not a team

    carol = await verifier.verify(oidc_provider.token("carol"))
    assert carol.teams == {"team-a": "member", "team-b": None}
    assert carol.roles == frozenset()

    root = await verifier.verify(oidc_provider.token("root"))
    assert root.platform_admin and root.roles == {"gateway_admin", "user"} and root.teams == {}

    # only the gateway client's roles count, never another client's
    svc = await verifier.verify(oidc_provider.token("svc"))
    assert (svc.user_id, svc.username) == ("svc", None)
    assert svc.roles == {"auditor"} and svc.teams == {"team-a": None}

    nobody = await verifier.verify(oidc_provider.token("nobody"))
    assert nobody == Identity(
        user_id="user-nobody",
        username="nobody",
        roles=frozenset(),
        teams={},
        platform_admin=False,
        token_id=nobody.token_id,
        expires_at=nobody.expires_at,
    )


async def test_odd_claim_shapes_are_ignored_and_bad_team_ids_dropped(tmp_path: Any) -> None:
    odd = OidcClient(
        "odd",
        sub="user-odd",
        groups=["/teams/team-e/admin/extra", "/teams/bad team/admin", "/teams/team-f", 5],  # type: ignore[list-item]
        teams=["team-a ", "", "team-d", "../team-x"],
        extra_claims={"realm_access": ["gateway_admin"], "resource_access": "x"},
    )
    with OidcProvider([odd], workdir=tmp_path) as provider:
        verifier = OidcVerifier(provider.settings())
        identity = await verifier.verify(provider.token("odd"))
        await verifier.aclose()
    # "team-a " is not team-a: never normalised into another team
    assert identity.teams == {"team-d": None, "team-f": None}
    assert identity.roles == frozenset() and not identity.platform_admin


async def test_concurrent_first_verifies_share_one_key_fetch(
    oidc_provider: OidcProvider, verifier: OidcVerifier
) -> None:
    tokens = [oidc_provider.token(c) for c in ("alice", "bob", "carol", "root")] * 5
    before = oidc_provider.jwks_fetches()
    identities = await asyncio.gather(*(verifier.verify(t) for t in tokens))
    assert {i.user_id for i in identities} == {"user-alice", "user-bob", "user-carol", "user-root"}
    assert oidc_provider.jwks_fetches() - before == 1
    assert verifier.refreshes == 1


async def test_warm_fetches_the_keys_before_the_first_request(
    oidc_provider: OidcProvider, verifier: OidcVerifier
) -> None:
    before = oidc_provider.jwks_fetches()
    assert await verifier.warm()
    assert oidc_provider.jwks_fetches() - before == 1
    await verifier.verify(oidc_provider.token("alice"))
    assert oidc_provider.jwks_fetches() - before == 1


# -- time ----------------------------------------------------------------------------------
async def test_an_expired_token_is_refused(
    oidc_provider: OidcProvider, verifier: OidcVerifier
) -> None:
    await verifier.warm()
    token = oidc_provider.token("brief")  # lives 2 s
    exp = _claims(token)["exp"]
    assert (await verifier.verify(token)).user_id == "user-brief"
    deadline = time.monotonic() + 10
    while time.time() < exp:  # wait for the expiry itself
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await _refused(verifier, token, "expired")


async def test_a_token_not_valid_yet_is_refused(
    oidc_provider: OidcProvider, verifier: OidcVerifier
) -> None:
    token = oidc_provider.token("later")
    assert _claims(token)["nbf"] > time.time() + 30
    await _refused(verifier, token, "not valid yet")


# -- foreign tokens --------------------------------------------------------------------------
async def test_a_token_for_another_audience_is_refused(
    oidc_provider: OidcProvider, verifier: OidcVerifier
) -> None:
    token = oidc_provider.token("alice", audience=OTHER_AUDIENCE)
    assert _claims(token)["aud"] == OTHER_AUDIENCE
    await _refused(verifier, token, "audience")
    # the same provider's token for the gateway passes
    await verifier.verify(oidc_provider.token("alice"))


async def test_a_token_from_another_issuer_is_refused(oidc_provider: OidcProvider) -> None:
    other = OidcVerifier(
        oidc_provider.settings(
            issuer=f"{oidc_provider.issuer}/realms/other", jwks_uri=oidc_provider.jwks_uri
        )
    )
    await _refused(other, oidc_provider.token("alice"), "issuer")
    await other.aclose()


# -- attacks (tokens forged here) ---------------------------------------------------------------
async def test_a_tampered_payload_is_refused(
    oidc_provider: OidcProvider, verifier: OidcVerifier
) -> None:
    header, payload, signature = oidc_provider.token("alice").split(".")
    claims = json.loads(_unb64(payload))
    claims["teams"] = ["team-z"]
    claims["realm_access"] = {"roles": ["gateway_admin"]}
    forged = ".".join([header, _b64(json.dumps(claims).encode()), signature])
    await _refused(verifier, forged, "signature")


async def test_alg_none_is_refused(oidc_provider: OidcProvider, verifier: OidcVerifier) -> None:
    claims = _claims(oidc_provider.token("alice"))
    kid = oidc_provider.signing_key["kid"]
    for alg in ("none", "None", "NONE"):
        header = {"alg": alg, "typ": "JWT", "kid": kid}
        forged = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."
        await _refused(verifier, forged, "algorithm")


async def test_hs256_forged_with_the_public_key_as_secret_is_refused(
    oidc_provider: OidcProvider, verifier: OidcVerifier
) -> None:
    claims = _claims(oidc_provider.token("alice")) | {"realm_access": {"roles": ["gateway_admin"]}}
    jwk = public_jwk(oidc_provider.signing_key)
    pem = RSAAlgorithm.from_jwk(jwk).public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    secrets = [pem, json.dumps(jwk).encode(), json.dumps({"keys": [jwk]}).encode()]
    for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
        for secret in secrets:
            header = {"alg": alg, "typ": "JWT", "kid": jwk["kid"]}
            signing_input = (
                f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
            )
            mac = hmac.new(secret, signing_input.encode(), digest).digest()
            await _refused(verifier, f"{signing_input}.{_b64(mac)}", "algorithm")


async def test_a_token_signed_by_a_foreign_key_under_a_real_kid_is_refused(
    oidc_provider: OidcProvider, verifier: OidcVerifier
) -> None:
    claims = _claims(oidc_provider.token("alice"))
    foreign = new_key(kid=oidc_provider.signing_key["kid"])
    await _refused(verifier, _sign(claims, foreign), "signature")


async def test_an_algorithm_outside_the_allowed_list_is_refused(
    oidc_provider: OidcProvider, verifier: OidcVerifier
) -> None:
    claims = _claims(oidc_provider.token("alice"))
    key = RSAAlgorithm.from_jwk(oidc_provider.signing_key)
    kid = oidc_provider.signing_key["kid"]
    forged = jwt.encode(claims, key, algorithm="PS256", headers={"kid": kid})  # type: ignore[arg-type]
    await _refused(verifier, forged, "algorithm")  # the provider's own key, but not RS256


@pytest.mark.parametrize("typ", ["ID", "Refresh"])
async def test_id_and_refresh_tokens_are_not_access_tokens(
    oidc_provider: OidcProvider, verifier: OidcVerifier, typ: str
) -> None:
    """A Keycloak ID token for a client whose id is also an accepted audience: every claim and
    the signature are right, but it grants nothing."""
    claims = _claims(oidc_provider.token("alice")) | {"typ": typ}
    await _refused(verifier, _sign(claims, oidc_provider.signing_key), "not an access token")


async def test_a_jwt_typed_as_something_else_is_refused(
    oidc_provider: OidcProvider, verifier: OidcVerifier
) -> None:
    claims = _claims(oidc_provider.token("alice"))
    key = RSAAlgorithm.from_jwk(oidc_provider.signing_key)
    kid = oidc_provider.signing_key["kid"]
    forged = jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid, "typ": "logout+jwt"})  # type: ignore[arg-type]
    await _refused(verifier, forged, "not an access token")


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub"])
async def test_a_token_lacking_a_required_claim_is_refused(
    oidc_provider: OidcProvider, verifier: OidcVerifier, claim: str
) -> None:
    claims = _claims(oidc_provider.token("alice"))
    del claims[claim]
    # signed with the provider's own key: only the missing claim is wrong
    await _refused(verifier, _sign(claims, oidc_provider.signing_key), repr(claim))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b.c",
        "a.b",
        "..",
        "eyJhbGciOiJSUzI1NiJ9.e30.",
        _b64(b"[1]") + ".e30.x",
        _b64(b'{"alg":"RS256","kid":7}') + ".e30.x",
        "x" * 20_000,
    ],
    ids=[
        "empty",
        "one-part",
        "junk",
        "two-parts",
        "dots",
        "no-sig",
        "list-header",
        "int-kid",
        "huge",
    ],
)
async def test_garbage_is_refused_as_a_bad_token(verifier: OidcVerifier, token: str) -> None:
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    assert caught.value.status == 401


async def test_bad_claim_values_are_refused_not_crashed(
    oidc_provider: OidcProvider, verifier: OidcVerifier
) -> None:
    claims = _claims(oidc_provider.token("alice"))
    bad_values: list[dict[str, Any]] = [
        {"exp": "soon"},
        {"exp": [1]},
        {"iat": {}},
        {"exp": 10**30},
        {"nbf": "later"},
        {"aud": [1]},
        {"iss": ["x"]},
        {"sub": 7},
    ]
    for bad in bad_values:
        with pytest.raises(InvalidToken):
            await verifier.verify(_sign(claims | bad, oidc_provider.signing_key))


# -- keys: unknown kids, rotation, outage -------------------------------------------------------------
async def test_an_unknown_kid_refreshes_the_keys_at_most_once_per_cooldown(
    oidc_provider: OidcProvider,
) -> None:
    claims = _claims(oidc_provider.token("alice"))
    forged = [_sign(claims, new_key(kid=f"forged-{i}")) for i in range(4)]
    token = oidc_provider.token("alice")

    # within the cooldown: no request to the provider, however many unknown kids
    patient = OidcVerifier(oidc_provider.settings(jwks_refresh_cooldown_seconds=60))
    before = oidc_provider.jwks_fetches()
    await patient.verify(token)
    for bad in forged:
        await _refused(patient, bad, "unknown")
    assert oidc_provider.jwks_fetches() - before == 1

    # past the cooldown (none here): one refresh per unknown kid, shared by concurrent verifies
    eager = OidcVerifier(oidc_provider.settings(jwks_refresh_cooldown_seconds=0))
    await eager.verify(token)
    before = oidc_provider.jwks_fetches()
    results = await asyncio.gather(*(eager.verify(t) for t in forged), return_exceptions=True)
    assert all(isinstance(r, InvalidToken) and "unknown" in r.message for r in results)
    assert oidc_provider.jwks_fetches() - before == 1
    await _refused(eager, forged[0], "unknown")
    assert oidc_provider.jwks_fetches() - before == 2
    await patient.aclose()
    await eager.aclose()


async def test_rotation_needs_no_restart_of_the_verifier(own_provider: OidcProvider) -> None:
    verifier = OidcVerifier(own_provider.settings(jwks_cache_seconds=0.2))
    old_token = own_provider.token("alice")
    await verifier.verify(old_token)

    new = own_provider.rotate()  # the provider now signs with `new` and still publishes the old key
    new_token = own_provider.token("bob")
    assert jwt.get_unverified_header(new_token)["kid"] == new["kid"]
    assert (await verifier.verify(new_token)).user_id == "user-bob"  # unknown kid → one refresh
    assert (await verifier.verify(old_token)).user_id == "user-alice"

    # the provider stops publishing the old key: once the cache is refreshed, old tokens fail
    own_provider.restart(keys=[new])
    deadline = time.monotonic() + 10
    while True:
        try:
            await verifier.verify(old_token)
        except InvalidToken as exc:
            assert "unknown" in exc.message
            break
        assert time.monotonic() < deadline, "the removed key still verifies"
        await asyncio.sleep(0.02)
    assert (await verifier.verify(new_token)).user_id == "user-bob"
    await verifier.aclose()


async def test_cached_keys_keep_working_while_the_provider_is_down(
    own_provider: OidcProvider,
) -> None:
    verifier = OidcVerifier(own_provider.settings(jwks_cache_seconds=0.05))
    tokens = [own_provider.token(c) for c in ("alice", "bob")]
    claims = _claims(tokens[0])
    await verifier.verify(tokens[0])
    own_provider.stop()

    # the cache goes stale, refreshes fail in the background, the cached key still verifies
    refreshes = verifier.refreshes
    deadline = time.monotonic() + 10
    n = 0
    while verifier.refreshes < refreshes + 2:
        assert time.monotonic() < deadline, "no refresh was attempted"
        for token in tokens:
            await verifier.verify(token)
        n += 1  # a token never seen, so the key itself is used (verified tokens are cached)
        await verifier.verify(_sign(claims | {"jti": f"fresh-{n}"}, own_provider.signing_key))
        await asyncio.sleep(0.02)

    # a key it has never seen cannot be checked while the provider is down: 503, not 401
    with pytest.raises(Unavailable) as caught:
        await verifier.verify(_sign(claims, new_key(kid="after-outage")))
    assert caught.value.status == 503 and not isinstance(caught.value, Unauthenticated)
    assert caught.value.retry_after >= 1

    # nor can anything be verified by a verifier that never reached the provider
    fresh = OidcVerifier(own_provider.settings())
    assert not await fresh.warm()
    with pytest.raises(Unavailable):
        await fresh.verify(tokens[0])

    # the provider back on its port: the same verifier recovers without a restart
    own_provider.start()
    assert (await verifier.verify(own_provider.token("carol"))).user_id == "user-carol"
    assert (await fresh.verify(tokens[1])).user_id == "user-bob"
    await verifier.aclose()
    await fresh.aclose()


# -- errors cross processes ---------------------------------------------------------------------
def test_invalid_token_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(InvalidToken("token has expired")))
    assert isinstance(err, Unauthenticated)
    assert (err.status, err.code, err.message) == (401, "invalid_token", "token has expired")


async def test_a_verified_token_is_not_verified_again_for_a_while(
    oidc_provider: OidcProvider, verifier: OidcVerifier
) -> None:
    """A client sends the same token with every request: it is checked once, then taken from a
    bounded cache for a few seconds (never past its exp); another token is checked."""
    checked: list[str] = []
    verify = verifier._verify

    async def counting(token: str) -> Identity:
        checked.append(token)
        return await verify(token)

    verifier._verify = counting  # type: ignore[method-assign]
    alice, bob = oidc_provider.token("alice"), oidc_provider.token("bob")
    first = await verifier.verify(alice)
    assert await verifier.verify(alice) == first and await verifier.verify(bob)
    assert checked == [alice, bob]
    with pytest.raises(InvalidToken):  # a tampered copy is not the cached token
        await verifier.verify(alice[:-4] + ("AAAA" if not alice.endswith("AAAA") else "BBBB"))
