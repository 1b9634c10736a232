"""Errors as types with stable codes, mapped once to HTTP problems and `payment.failed` events."""

from __future__ import annotations

from typing import Any


class PayportError(Exception):
    """Base error: `code` is stable and shows up in HTTP bodies and events."""

    code = "PROCESSING_ERROR"
    http_status = 500

    def __init__(
        self, message: str, *, field: str | None = None, code: str | None = None, **extra: Any
    ) -> None:
        """`code` overrides the class's code only to replay a failure recorded earlier."""
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code
        self.extra = extra

    def as_event_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.field:
            payload["field"] = self.field
        payload.update({k: v for k, v in self.extra.items() if v is not None})
        return payload


class InvalidPayload(PayportError):
    code = "INVALID_PAYLOAD"
    http_status = 422


class InvalidAmount(PayportError):
    code = "INVALID_AMOUNT"
    http_status = 422


class NotFound(PayportError):
    code = "NOT_FOUND"
    http_status = 404


class InvalidStatus(PayportError):
    code = "INVALID_STATUS"
    http_status = 409


class IdempotencyConflict(PayportError):
    """The same Idempotency-Key was sent with different parameters."""

    code = "IDEMPOTENCY_CONFLICT"
    http_status = 409


class CardError(PayportError):
    code = "STRIPE_CARD_ERROR"
    http_status = 402


class PaymentCanceled(PayportError):
    """The provider canceled the intent (expired hold, dashboard) without a revert."""

    code = "PAYMENT_CANCELED"
    http_status = 409


class PaymentReverted(PayportError):
    """A revert ended the payment while an authorization still waited for 3-D Secure."""

    code = "PAYMENT_REVERTED"
    http_status = 409


class ProviderUnavailable(PayportError):
    code = "STRIPE_API_ERROR"
    http_status = 502


class InvalidSignature(PayportError):
    code = "INVALID_SIGNATURE"
    http_status = 400


class PayloadTooLarge(PayportError):
    code = "PAYLOAD_TOO_LARGE"
    http_status = 413


class TransportUnavailable(PayportError):
    """The command transport (Kafka) cannot take a command right now; retry later."""

    code = "TRANSPORT_UNAVAILABLE"
    http_status = 503
