"""Who is asking: a Bearer JWT (HS256 with JWT_SECRET, or RS256 with JWT_PUBLIC_KEY) whose
`sub` is the shop's user id; and the short-lived token payport itself shows the shop's
internal endpoints (HS256 with INTERNAL_SERVICE_SECRET)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt

from payport.checkout.errors import CheckoutNotConfigured, NotAuthenticated
from payport.config import Settings

SERVICE_NAME = "payment-service"
INTERNAL_AUDIENCE = "internal-services"
INTERNAL_TOKEN_TTL_S = 60


@dataclass(frozen=True, slots=True)
class AuthenticatedUser:
    id: str
    email: str | None = None


class UserTokenVerifier:
    """Validates user tokens with one algorithm only, so an HS256 token can never pass as
    RS256 (the public key is not a secret)."""

    def __init__(self, *, secret: str | None, public_key: str | None) -> None:
        if public_key is not None:
            self._key: str | None = _pem(public_key)
            self._algorithm = "RS256"
        else:
            self._key = secret
            self._algorithm = "HS256"

    @classmethod
    def from_settings(cls, settings: Settings) -> UserTokenVerifier:
        secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        return cls(secret=secret, public_key=settings.jwt_public_key)

    def verify(self, authorization: str | None) -> AuthenticatedUser:
        if self._key is None:
            raise CheckoutNotConfigured("JWT_SECRET or JWT_PUBLIC_KEY is not configured")
        token = _bearer_token(authorization)
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                options={"require": ["sub", "exp"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise NotAuthenticated("Token expired") from None
        except jwt.InvalidTokenError:
            raise NotAuthenticated("Invalid token") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise NotAuthenticated("Invalid token")
        email = claims.get("email")
        return AuthenticatedUser(subject, email if isinstance(email, str) else None)


def _bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("User not authenticated")
    return token.strip()


def _pem(value: str) -> str:
    """JWT_PUBLIC_KEY holds the PEM text itself or the path of a PEM file."""
    if value.lstrip().startswith("-----BEGIN"):
        return value
    return Path(value).read_text(encoding="utf-8")


def internal_service_token(secret: str, *, now_s: float | None = None) -> str:
    """A token the shop's services verify with INTERNAL_SERVICE_SECRET; valid for a minute,
    so a leaked one is soon useless."""
    issued = int(time.time() if now_s is None else now_s)
    claims = {
        "iss": SERVICE_NAME,
        "sub": SERVICE_NAME,
        "aud": INTERNAL_AUDIENCE,
        "iat": issued,
        "exp": issued + INTERNAL_TOKEN_TTL_S,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def internal_headers(settings: Settings) -> dict[str, str]:
    """Headers for every call to the shop's internal endpoints; none without a secret."""
    if settings.internal_service_secret is None:
        raise CheckoutNotConfigured("INTERNAL_SERVICE_SECRET is not configured")
    token = internal_service_token(settings.internal_service_secret.get_secret_value())
    return {"X-Internal-Service": SERVICE_NAME, "Authorization": f"Bearer {token}"}
