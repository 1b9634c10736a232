"""StripeProvider: payport's PaymentProvider port, answered by Stripe through its official SDK.

One `StripeClient` per process on the SDK's httpx transport; the API version is the one
pinned in `providers.base`, and every mutating call carries the caller's idempotency key,
so a call repeated after a crash is answered from Stripe's record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar, cast

import stripe
from pydantic import SecretStr
from stripe.params import (
    PaymentIntentCancelParams,
    PaymentIntentCaptureParams,
    PaymentIntentCreateParams,
    RefundCreateParams,
    TransferCreateParams,
    TransferReversalCreateParams,
)
from stripe.params.checkout import SessionCreateParams

from payport.config import ConfigError, Settings
from payport.money import Money
from payport.providers.base import (
    CANCELLATION_REASONS,
    REFUND_REASONS,
    STRIPE_API_VERSION,
    AuthorizeRequest,
    ChargeView,
    CheckoutSessionRequest,
    CheckoutSessionView,
    IntentView,
    OffSessionCharge,
    ProviderInvalidRequest,
    RefundView,
    TransferReversalView,
    TransferView,
)
from payport.providers.stripe.convert import plain
from payport.providers.stripe.errors import provider_error
from payport.providers.views import (
    charge_view,
    checkout_session_view,
    intent_view,
    refund_view,
    reversal_view,
    transfer_view,
)

T = TypeVar("T", bound=stripe.StripeObject)


class StripeProvider:
    """Escrow on Stripe: manual-capture PaymentIntents, refunds, Connect transfers."""

    name = "stripe"

    def __init__(
        self,
        secret_key: SecretStr,
        *,
        api_base: str | None = None,
        timeout_s: float = 30.0,
        max_network_retries: int = 2,
    ) -> None:
        self._secret = secret_key
        self._api_base = api_base.rstrip("/") if api_base else None
        self._http = stripe.HTTPXClient(timeout=timeout_s)
        self._client = stripe.StripeClient(
            secret_key.get_secret_value(),
            stripe_version=STRIPE_API_VERSION,
            base_addresses={"api": self._api_base} if self._api_base else None,
            max_network_retries=max_network_retries,
            http_client=self._http,
        )

    def __repr__(self) -> str:
        return f"StripeProvider(api_base={self._api_base or stripe.DEFAULT_API_BASE!r})"

    # --- the PaymentProvider port -------------------------------------------------------

    async def create_payment_intent(
        self, request: AuthorizeRequest, *, idempotency_key: str
    ) -> IntentView:
        """Create and confirm. A decline raises ProviderCardError carrying the intent."""
        params = payment_intent_params(request)
        intent = await self._call(
            "create_payment_intent",
            self._client.v1.payment_intents.create_async(
                params, options={"idempotency_key": idempotency_key}
            ),
        )
        return intent_view(plain(intent))

    async def charge_off_session(
        self, charge: OffSessionCharge, *, idempotency_key: str
    ) -> IntentView:
        """PaymentIntent with confirm=true, off_session=true and automatic capture."""
        return await self.create_payment_intent(
            charge.as_authorize_request(), idempotency_key=idempotency_key
        )

    async def retrieve_payment_intent(self, intent_id: str) -> IntentView:
        intent = await self._call(
            "retrieve_payment_intent", self._client.v1.payment_intents.retrieve_async(intent_id)
        )
        return intent_view(plain(intent))

    async def find_payment_intent_for_payment(self, payment_id: str) -> IntentView | None:
        """Stripe's search; its index trails writes by up to about a minute, which is fine for
        the one caller, a retry made after the 24 h idempotency window."""
        query = f"metadata['payment_id']:'{_search_literal(payment_id)}'"
        found = await self._call(
            "find_payment_intent_for_payment",
            self._client.v1.payment_intents.search_async({"query": query, "limit": 1}),
        )
        return intent_view(plain(found.data[0])) if found.data else None

    async def capture_payment_intent(
        self, intent_id: str, *, amount_minor: int | None, idempotency_key: str
    ) -> IntentView:
        """Capture the hold: all of it, or `amount_minor` (the rest is released)."""
        params: PaymentIntentCaptureParams = {}
        if amount_minor is not None:
            params["amount_to_capture"] = amount_minor
        intent = await self._call(
            "capture_payment_intent",
            self._client.v1.payment_intents.capture_async(
                intent_id, params, options={"idempotency_key": idempotency_key}
            ),
        )
        return intent_view(plain(intent))

    async def cancel_payment_intent(
        self, intent_id: str, *, reason: str, idempotency_key: str
    ) -> IntentView:
        _check_choice(reason, CANCELLATION_REASONS, "cancellation_reason")
        params: PaymentIntentCancelParams = {"cancellation_reason": reason}
        intent = await self._call(
            "cancel_payment_intent",
            self._client.v1.payment_intents.cancel_async(
                intent_id, params, options={"idempotency_key": idempotency_key}
            ),
        )
        return intent_view(plain(intent))

    async def create_refund(
        self,
        *,
        payment_intent: str,
        amount_minor: int | None,
        reason: str,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundView:
        _check_choice(reason, REFUND_REASONS, "reason")
        params: RefundCreateParams = {
            "payment_intent": payment_intent,
            "reason": reason,
            "metadata": dict(metadata or {}),
        }
        if amount_minor is not None:
            params["amount"] = amount_minor
        refund = await self._call(
            "create_refund",
            self._client.v1.refunds.create_async(
                params, options={"idempotency_key": idempotency_key}
            ),
        )
        return refund_view(plain(refund))

    async def retrieve_charge(self, charge_id: str) -> ChargeView:
        charge = await self._call(
            "retrieve_charge", self._client.v1.charges.retrieve_async(charge_id)
        )
        return charge_view(plain(charge))

    async def create_transfer(
        self,
        *,
        amount: Money,
        destination: str,
        transfer_group: str | None,
        source_transaction: str | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> TransferView:
        """Pay a connected account; `source_transaction` lets pending charge funds go out."""
        params: TransferCreateParams = {
            "amount": amount.amount_minor,
            "currency": amount.currency,
            "destination": destination,
            "metadata": dict(metadata or {}),
        }
        if transfer_group is not None:
            params["transfer_group"] = transfer_group
        if source_transaction is not None:
            params["source_transaction"] = source_transaction
        transfer = await self._call(
            "create_transfer",
            self._client.v1.transfers.create_async(
                params, options={"idempotency_key": idempotency_key}
            ),
        )
        return transfer_view(plain(transfer))

    async def retrieve_transfer(self, transfer_id: str) -> TransferView:
        transfer = await self._call(
            "retrieve_transfer", self._client.v1.transfers.retrieve_async(transfer_id)
        )
        return transfer_view(plain(transfer))

    async def create_transfer_reversal(
        self, transfer_id: str, *, amount_minor: int | None, idempotency_key: str
    ) -> TransferReversalView:
        params: TransferReversalCreateParams = {}
        if amount_minor is not None:
            params["amount"] = amount_minor
        reversal = await self._call(
            "create_transfer_reversal",
            self._client.v1.transfers.reversals.create_async(
                transfer_id, params, options={"idempotency_key": idempotency_key}
            ),
        )
        return reversal_view(plain(reversal))

    async def create_checkout_session(
        self, request: CheckoutSessionRequest, *, idempotency_key: str
    ) -> CheckoutSessionView:
        """A hosted Checkout page; the PaymentIntent appears when the customer pays."""
        session = await self._call(
            "create_checkout_session",
            self._client.v1.checkout.sessions.create_async(
                checkout_session_params(request), options={"idempotency_key": idempotency_key}
            ),
        )
        return checkout_session_view(plain(session))

    async def retrieve_checkout_session(self, session_id: str) -> CheckoutSessionView:
        session = await self._call(
            "retrieve_checkout_session",
            self._client.v1.checkout.sessions.retrieve_async(session_id),
        )
        return checkout_session_view(plain(session))

    async def expire_checkout_session(
        self, session_id: str, *, idempotency_key: str
    ) -> CheckoutSessionView:
        session = await self._call(
            "expire_checkout_session",
            self._client.v1.checkout.sessions.expire_async(
                session_id, options={"idempotency_key": idempotency_key}
            ),
        )
        return checkout_session_view(plain(session))

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        # The SDK leaves `close_async` unannotated; it returns httpx's `aclose()`.
        close = cast(Callable[[], Awaitable[None]], self._http.close_async)
        await close()

    # --- machinery ---------------------------------------------------------------------------

    async def _call(self, operation: str, call: Awaitable[T]) -> T:
        """Await one SDK call; its exceptions leave as the port's errors, without the key."""
        try:
            return await call
        except stripe.StripeError as exc:
            raise provider_error(exc, operation=operation, secret=self._secret) from None


def payment_intent_params(request: AuthorizeRequest) -> PaymentIntentCreateParams:
    """Create-and-confirm parameters. Redirect-based methods are allowed only when the
    caller can take the customer back (`return_url`); otherwise Stripe would refuse the
    confirm for lack of one."""
    params: PaymentIntentCreateParams = {
        "amount": request.amount.amount_minor,
        "currency": request.amount.currency,
        "payment_method": request.payment_method,
        "confirm": True,
        "capture_method": "manual" if request.capture_manually else "automatic",
        "metadata": dict(request.metadata),
    }
    if request.customer:
        params["customer"] = request.customer
    if request.description:
        params["description"] = request.description
    if request.return_url:
        params["return_url"] = request.return_url
        params["automatic_payment_methods"] = {"enabled": True, "allow_redirects": "always"}
    else:
        params["automatic_payment_methods"] = {"enabled": True, "allow_redirects": "never"}
    if request.off_session:
        params["off_session"] = True
    return params


def checkout_session_params(request: CheckoutSessionRequest) -> SessionCreateParams:
    """Mode `payment` with inline prices in minor units; the order's metadata is copied to
    the PaymentIntent so its events (`payment_intent.payment_failed`) name the order too."""
    return {
        "mode": "payment",
        "line_items": [
            {
                "quantity": item.quantity,
                "price_data": {
                    "currency": request.currency,
                    "unit_amount": item.unit_amount_minor,
                    "product_data": {"name": item.name},
                },
            }
            for item in request.line_items
        ],
        "success_url": request.success_url,
        "cancel_url": request.cancel_url,
        "expires_at": int(request.expires_at.timestamp()),
        "client_reference_id": request.client_reference_id,
        "metadata": dict(request.metadata),
        "payment_intent_data": {"metadata": dict(request.metadata)},
        **({"customer_email": request.customer_email} if request.customer_email else {}),
    }


def _search_literal(value: str) -> str:
    """A value inside a single-quoted Stripe search string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _check_choice(value: str, allowed: frozenset[str], param: str) -> None:
    """Refuse a reason Stripe would refuse, before spending a request on it."""
    if value not in allowed:
        raise ProviderInvalidRequest(
            f"Invalid {param}: must be one of {', '.join(sorted(allowed))}", param=param
        )


def build_stripe_provider(settings: Settings) -> StripeProvider:
    """The provider `PAYPORT_PROVIDER=stripe` runs with, configured from settings."""
    if settings.stripe_secret_key is None:
        raise ConfigError("STRIPE_SECRET_KEY", "is required when PAYPORT_PROVIDER=stripe")
    return StripeProvider(
        settings.stripe_secret_key,
        api_base=settings.stripe_api_base,
        timeout_s=settings.stripe_timeout_s,
        max_network_retries=settings.stripe_max_network_retries,
    )
