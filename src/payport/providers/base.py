"""The provider port: what payport asks of a payment provider, in Stripe's object model.

Every mutating call takes an idempotency key derived from its cause
(`authorize:{payment_id}`), so repeating a call after a crash is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from payport.money import Money

STRIPE_API_VERSION = "2026-06-24.dahlia"

# Stripe's PaymentIntent statuses.
PI_REQUIRES_PAYMENT_METHOD = "requires_payment_method"
PI_REQUIRES_CONFIRMATION = "requires_confirmation"
PI_REQUIRES_ACTION = "requires_action"
PI_PROCESSING = "processing"
PI_REQUIRES_CAPTURE = "requires_capture"
PI_CANCELED = "canceled"
PI_SUCCEEDED = "succeeded"

CANCELLATION_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer", "abandoned"})
REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    """Create and confirm a PaymentIntent; manual capture holds the money in escrow."""

    amount: Money
    payment_method: str
    customer: str | None = None
    description: str | None = None
    return_url: str | None = None
    capture_manually: bool = True
    off_session: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OffSessionCharge:
    """Charge a saved card while the customer is away (a renewal): captured at once.

    Cards that need 3-D Secure fail with `authentication_required` instead of waiting.
    """

    amount: Money
    payment_method: str
    customer: str | None = None
    description: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def as_authorize_request(self) -> AuthorizeRequest:
        """The same PaymentIntent parameters an authorization uses, with automatic capture."""
        return AuthorizeRequest(
            amount=self.amount,
            payment_method=self.payment_method,
            customer=self.customer,
            description=self.description,
            capture_manually=False,
            off_session=True,
            metadata=self.metadata,
        )


@dataclass(frozen=True, slots=True)
class IntentView:
    """The parts of a PaymentIntent payport decides on; `raw` keeps the whole object."""

    id: str
    status: str
    amount_minor: int
    currency: str
    amount_capturable: int
    amount_received: int
    latest_charge: str | None
    next_action_url: str | None
    last_error_code: str | None
    last_decline_code: str | None
    last_error_message: str | None
    cancellation_reason: str | None
    metadata: Mapping[str, str]
    raw: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RefundView:
    id: str
    status: str
    amount_minor: int
    currency: str
    payment_intent: str | None
    charge: str | None
    reason: str | None
    raw: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TransferView:
    id: str
    amount_minor: int
    currency: str
    destination: str
    amount_reversed: int
    reversed: bool
    transfer_group: str | None
    source_transaction: str | None
    raw: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TransferReversalView:
    id: str
    transfer: str
    amount_minor: int
    raw: Mapping[str, Any]


class ProviderError(Exception):
    """A provider answered with an error; fields mirror Stripe's error object."""

    http_status = 400
    error_type = "api_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        decline_code: str | None = None,
        param: str | None = None,
        payment_intent: IntentView | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.decline_code = decline_code
        self.param = param
        self.payment_intent = payment_intent


class ProviderCardError(ProviderError):
    """The card was declined (HTTP 402); final for this payment method."""

    http_status = 402
    error_type = "card_error"


class ProviderInvalidRequest(ProviderError):
    """Bad parameters or a wrong state (HTTP 400/404); repeating will not help."""

    http_status = 400
    error_type = "invalid_request_error"


class ProviderIdempotencyError(ProviderError):
    """The idempotency key was used before with other parameters."""

    http_status = 400
    error_type = "idempotency_error"


class ProviderAuthenticationError(ProviderError):
    """The provider refused payport's key or its permissions (401/403): configuration,
    never retried."""

    http_status = 401
    error_type = "authentication_error"


class ProviderTransientError(ProviderError):
    """Rate limit, network or 5xx: outcome unknown, safe to retry with the same key."""

    http_status = 503
    error_type = "api_error"


class PaymentProvider(Protocol):
    """What payport needs from a provider (sandbox or Stripe)."""

    name: str

    async def create_payment_intent(
        self, request: AuthorizeRequest, *, idempotency_key: str
    ) -> IntentView:
        """Create and confirm. A decline raises ProviderCardError carrying the intent."""
        ...

    async def retrieve_payment_intent(self, intent_id: str) -> IntentView: ...

    async def charge_off_session(
        self, charge: OffSessionCharge, *, idempotency_key: str
    ) -> IntentView:
        """Create, confirm and capture off-session; a decline raises ProviderCardError."""
        ...

    async def capture_payment_intent(
        self, intent_id: str, *, amount_minor: int | None, idempotency_key: str
    ) -> IntentView: ...

    async def cancel_payment_intent(
        self, intent_id: str, *, reason: str, idempotency_key: str
    ) -> IntentView: ...

    async def create_refund(
        self,
        *,
        payment_intent: str,
        amount_minor: int | None,
        reason: str,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundView: ...

    async def create_transfer(
        self,
        *,
        amount: Money,
        destination: str,
        transfer_group: str | None,
        source_transaction: str | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> TransferView: ...

    async def retrieve_transfer(self, transfer_id: str) -> TransferView: ...

    async def create_transfer_reversal(
        self, transfer_id: str, *, amount_minor: int | None, idempotency_key: str
    ) -> TransferReversalView: ...

    async def aclose(self) -> None: ...
