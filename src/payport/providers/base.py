"""The provider port: what payport asks of a payment provider, in Stripe's object model.

Every mutating call takes an idempotency key derived from its cause
(`authorize:{payment_id}`), so repeating a call after a crash is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
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
class ChargeView:
    """What a charge says about money taken and given back; `refunded` counts only
    refunds of captured money when `captured` (an uncaptured hold shows as refunded)."""

    id: str
    amount_minor: int
    currency: str
    captured: bool
    amount_captured: int
    amount_refunded: int
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


# Stripe's Checkout Session statuses and payment statuses.
CS_OPEN = "open"
CS_COMPLETE = "complete"
CS_EXPIRED = "expired"
CS_PAID = "paid"
CS_UNPAID = "unpaid"
CS_NO_PAYMENT_REQUIRED = "no_payment_required"


@dataclass(frozen=True, slots=True)
class CheckoutLineItem:
    """One line on the hosted page; `unit_amount_minor` times `quantity` in the session currency."""

    name: str
    unit_amount_minor: int
    quantity: int


@dataclass(frozen=True, slots=True)
class CheckoutSessionRequest:
    """A hosted payment page (mode `payment`) for one order; metadata reaches the intent too."""

    currency: str
    line_items: Sequence[CheckoutLineItem]
    success_url: str
    cancel_url: str
    expires_at: datetime
    client_reference_id: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    customer_email: str | None = None

    @property
    def amount_total_minor(self) -> int:
        return sum(item.unit_amount_minor * item.quantity for item in self.line_items)


@dataclass(frozen=True, slots=True)
class CheckoutSessionView:
    id: str
    status: str
    payment_status: str
    url: str | None
    amount_total_minor: int
    currency: str
    payment_intent: str | None
    client_reference_id: str | None
    expires_at: int
    customer_email: str | None
    metadata: Mapping[str, str]
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

    async def find_payment_intent_for_payment(self, payment_id: str) -> IntentView | None:
        """The newest intent whose metadata names `payment_id`, if any: how a retry finds
        what its first attempt made once the provider has forgotten the idempotency key."""
        ...

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

    async def retrieve_charge(self, charge_id: str) -> ChargeView:
        """The charge behind an intent: what was captured and refunded in total."""
        ...

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

    async def create_checkout_session(
        self, request: CheckoutSessionRequest, *, idempotency_key: str
    ) -> CheckoutSessionView: ...

    async def retrieve_checkout_session(self, session_id: str) -> CheckoutSessionView: ...

    async def expire_checkout_session(
        self, session_id: str, *, idempotency_key: str
    ) -> CheckoutSessionView:
        """Close an open session; ProviderInvalidRequest if it is complete or expired."""
        ...

    async def aclose(self) -> None: ...
