"""Seed 004's error table as types. Each body carries the seed's message as `error` too."""

from __future__ import annotations

from typing import Any

from payport.errors import PayportError


class CheckoutError(PayportError):
    """A PayportError whose problem body also says `{"error": message}`, as seed 004 does."""

    def __init__(self, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message, field=field, error=message, **extra)


class OrderIdRequired(CheckoutError):
    code = "INVALID_PAYLOAD"
    http_status = 400

    def __init__(self, message: str = "orderId is required") -> None:
        super().__init__(message, field="orderId")


class NotAuthenticated(CheckoutError):
    code = "UNAUTHENTICATED"
    http_status = 401


class Forbidden(CheckoutError):
    code = "FORBIDDEN"
    http_status = 403


class OrderNotFound(CheckoutError):
    code = "NOT_FOUND"
    http_status = 404

    def __init__(self) -> None:
        super().__init__("Order not found", field="orderId")


class CheckoutPaymentNotFound(CheckoutError):
    code = "NOT_FOUND"
    http_status = 404

    def __init__(self) -> None:
        super().__init__("Payment not found", field="orderId")


class OrderNotPending(CheckoutError):
    code = "INVALID_STATUS"
    http_status = 400

    def __init__(self, status: str) -> None:
        super().__init__(f"Cannot create payment for order with status: {status}", field="status")


class PaymentAlreadyCompleted(CheckoutError):
    code = "PAYMENT_COMPLETED"
    http_status = 400

    def __init__(self) -> None:
        super().__init__("Payment already completed", field="orderId")


class PaymentAlreadyFailed(CheckoutError):
    code = "PAYMENT_FAILED"
    http_status = 400

    def __init__(self) -> None:
        super().__init__("Payment failed for this order; it is being cancelled", field="orderId")


class SessionCreationFailed(CheckoutError):
    """The provider refused or failed; what it said stays in the logs, never in the answer."""

    code = "PROCESSING_ERROR"
    http_status = 500

    def __init__(self) -> None:
        super().__init__("Failed to create payment session")


class OrderServiceUnavailable(CheckoutError):
    code = "ORDER_SERVICE_UNAVAILABLE"
    http_status = 503

    def __init__(self) -> None:
        super().__init__("Order service unavailable; try again shortly")


class InvalidOrder(CheckoutError):
    """The order service answered with an order payport cannot charge."""

    code = "INVALID_ORDER"
    http_status = 502


class CheckoutNotConfigured(CheckoutError):
    code = "NOT_CONFIGURED"
    http_status = 503


class InvalidWebhookSignature(CheckoutError):
    code = "INVALID_SIGNATURE"
    http_status = 400

    def __init__(self) -> None:
        super().__init__("Invalid signature", field="Stripe-Signature")
