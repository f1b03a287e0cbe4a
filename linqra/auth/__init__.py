"""Who is calling: verified identities from OpenID Connect access tokens (and, beside them,
principals, API keys and audit)."""

from linqra.auth.oidc import MAX_TOKEN_CHARS, Identity, InvalidToken, OidcVerifier

__all__ = ["MAX_TOKEN_CHARS", "Identity", "InvalidToken", "OidcVerifier"]
