"""SandboxProvider: payport's PaymentProvider port, answered in-process with Stripe's semantics.

State lives in the sandbox tables, so it survives restarts and is shared by every process.
Each call is one short transaction that also saves its idempotency record and its events.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from payport.coalesce import Coalescer
from payport.db import Database, utcnow
from payport.money import MAX_AMOUNT_MINOR, Money, normalize_currency
from payport.providers.base import (
    AuthorizeRequest,
    ChargeView,
    CheckoutSessionRequest,
    CheckoutSessionView,
    IntentView,
    OffSessionCharge,
    ProviderError,
    ProviderIdempotencyError,
    ProviderInvalidRequest,
    ProviderTransientError,
    RefundView,
    TransferReversalView,
    TransferView,
)
from payport.providers.sandbox import checkout, intents, movements
from payport.providers.sandbox.models import SandboxIdempotencyRecord
from payport.providers.sandbox.objects import (
    JSON,
    error_body,
    error_from_body,
    new_id,
    resource_missing,
)
from payport.providers.sandbox.store import KeyInUseError, RequestContext, SandboxStore
from payport.providers.views import (
    charge_view,
    checkout_session_view,
    intent_view,
    refund_view,
    reversal_view,
    transfer_view,
)

Operation = Callable[[RequestContext], Awaitable[JSON]]

SIGNING_KEY_STATE_NAME = "webhook_secret"
_MAX_KEY_LENGTH = 255
_CLAIM_ATTEMPTS = 3
_IDEMPOTENCY_MISMATCH = (
    "Keys for idempotent requests can only be used with the same parameters they were first "
    "used with. Try using a key other than '{key}' if you meant to execute a different request."
)


@dataclass(frozen=True, slots=True)
class _Call:
    """A mutating request as idempotency sees it: which method, with which parameters."""

    method: str
    params: Mapping[str, Any]
    idempotency_key: str | None
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        canonical = json.dumps([self.method, self.params], sort_keys=True, separators=(",", ":"))
        object.__setattr__(self, "fingerprint", hashlib.sha256(canonical.encode()).hexdigest())


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What a request answered: a 200 body, or an error (raised only after commit)."""

    http_status: int
    body: JSON
    error: ProviderError | None = None

    def unwrap(self) -> JSON:
        if self.error is not None:
            raise self.error
        return self.body


class SandboxProvider:
    """A real provider for demos and tests: test cards, 3-D Secure, escrow, refunds, transfers."""

    name = "sandbox"

    def __init__(
        self,
        db: Database,
        *,
        base_url: str,
        latency_ms: int = 0,
        failure_rate: float = 0.0,
        configured_webhook_secrets: Sequence[str] = (),
        rng: random.Random | None = None,
    ) -> None:
        if latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure_rate must be between 0 and 1")
        self._db = db
        self.base_url = base_url.rstrip("/")
        self._latency_s = latency_ms / 1000
        self._failure_rate = failure_rate
        self._configured_secrets = tuple(configured_webhook_secrets)
        self._rng = rng or random.Random()
        self._generated_secret: str | None = None
        # On PostgreSQL two batches may overlap (SQLite has one writer): calls on one object
        # lock it, and a key used twice at once fails on its primary key and replays (_run).
        self._calls: Coalescer[tuple[_Call, Operation], _Outcome] = Coalescer(
            self._run_many, concurrency=1 if db.is_sqlite else 2
        )

    # --- the PaymentProvider port -------------------------------------------------------

    async def create_payment_intent(
        self, request: AuthorizeRequest, *, idempotency_key: str
    ) -> IntentView:
        """Create and confirm. A decline raises ProviderCardError carrying the intent."""
        await self._simulate_network()
        currency = intents.check_amount(request.amount.amount_minor, request.amount.currency)
        method = intents.check_payment_method(request.payment_method, now=utcnow())
        params = {
            "amount": request.amount.amount_minor, "currency": currency,
            "payment_method": request.payment_method, "customer": request.customer,
            "description": request.description, "return_url": request.return_url,
            "capture_manually": request.capture_manually, "off_session": request.off_session,
            "metadata": dict(request.metadata),
        }  # fmt: skip
        call = _Call("create_payment_intent", params, idempotency_key)
        body = await self._run(
            call, lambda ctx: intents.create_payment_intent(ctx, request, currency, method)
        )
        return intent_view(body)

    async def charge_off_session(
        self, charge: OffSessionCharge, *, idempotency_key: str
    ) -> IntentView:
        """A renewal: the saved card is charged and captured with nobody there for 3-D Secure."""
        return await self.create_payment_intent(
            charge.as_authorize_request(), idempotency_key=idempotency_key
        )

    async def retrieve_payment_intent(self, intent_id: str) -> IntentView:
        await self._simulate_network()
        intent = await self.find_payment_intent(intent_id)
        if intent is None:
            raise resource_missing("payment_intent", intent_id)
        return intent

    async def capture_payment_intent(
        self, intent_id: str, *, amount_minor: int | None, idempotency_key: str
    ) -> IntentView:
        await self._simulate_network()
        intents.check_positive(amount_minor, "amount_to_capture")
        params = {"id": intent_id, "amount": amount_minor}
        call = _Call("capture_payment_intent", params, idempotency_key)
        body = await self._run(call, lambda ctx: intents.capture(ctx, intent_id, amount_minor))
        return intent_view(body)

    async def cancel_payment_intent(
        self, intent_id: str, *, reason: str, idempotency_key: str
    ) -> IntentView:
        await self._simulate_network()
        intents.check_cancellation_reason(reason)
        call = _Call("cancel_payment_intent", {"id": intent_id, "reason": reason}, idempotency_key)
        body = await self._run(call, lambda ctx: intents.cancel(ctx, intent_id, reason))
        return intent_view(body)

    async def create_refund(
        self,
        *,
        payment_intent: str,
        amount_minor: int | None,
        reason: str,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundView:
        await self._simulate_network()
        intents.check_positive(amount_minor, "amount")
        movements.check_refund_reason(reason)
        extra = dict(metadata or {})
        params = {
            "payment_intent": payment_intent, "amount": amount_minor, "reason": reason,
            "metadata": extra,
        }  # fmt: skip
        body = await self._run(
            _Call("create_refund", params, idempotency_key),
            lambda ctx: movements.refund(ctx, payment_intent, amount_minor, reason, extra),
        )
        return refund_view(body)

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
        await self._simulate_network()
        amount = _check_transfer_amount(amount)
        movements.check_destination(destination)
        extra = dict(metadata or {})
        params = {
            "amount": amount.amount_minor, "currency": amount.currency, "destination": destination,
            "transfer_group": transfer_group, "source_transaction": source_transaction,
            "metadata": extra,
        }  # fmt: skip
        body = await self._run(
            _Call("create_transfer", params, idempotency_key),
            lambda ctx: movements.create_transfer(
                ctx, amount, destination, transfer_group, source_transaction, extra
            ),
        )
        return transfer_view(body)

    async def retrieve_charge(self, charge_id: str) -> ChargeView:
        await self._simulate_network()
        async with self._db.read() as session:
            charge = await SandboxStore(session).get(charge_id, "charge")
        if charge is None:
            raise resource_missing("charge", charge_id)
        return charge_view(charge)

    async def retrieve_transfer(self, transfer_id: str) -> TransferView:
        await self._simulate_network()
        async with self._db.read() as session:
            transfer = await SandboxStore(session).get(transfer_id, "transfer")
        if transfer is None:
            raise resource_missing("transfer", transfer_id)
        return transfer_view(transfer)

    async def create_transfer_reversal(
        self, transfer_id: str, *, amount_minor: int | None, idempotency_key: str
    ) -> TransferReversalView:
        await self._simulate_network()
        intents.check_positive(amount_minor, "amount")
        params = {"id": transfer_id, "amount": amount_minor}
        call = _Call("create_transfer_reversal", params, idempotency_key)
        body = await self._run(
            call, lambda ctx: movements.reverse_transfer(ctx, transfer_id, amount_minor)
        )
        return reversal_view(body)

    async def create_checkout_session(
        self, request: CheckoutSessionRequest, *, idempotency_key: str
    ) -> CheckoutSessionView:
        await self._simulate_network()
        currency = checkout.check_request(request, now=utcnow())
        params = {
            "currency": currency, "expires_at": int(request.expires_at.timestamp()),
            "line_items": [[i.name, i.unit_amount_minor, i.quantity] for i in request.line_items],
            "success_url": request.success_url, "cancel_url": request.cancel_url,
            "client_reference_id": request.client_reference_id,
            "metadata": dict(request.metadata), "customer_email": request.customer_email,
        }  # fmt: skip
        body = await self._run(
            _Call("create_checkout_session", params, idempotency_key),
            lambda ctx: checkout.create_session(ctx, request, currency),
        )
        return checkout_session_view(body)

    async def retrieve_checkout_session(self, session_id: str) -> CheckoutSessionView:
        await self._simulate_network()
        found = await self.find_checkout_session(session_id)
        if found is None:
            raise resource_missing("checkout.session", session_id)
        return found

    async def expire_checkout_session(
        self, session_id: str, *, idempotency_key: str
    ) -> CheckoutSessionView:
        await self._simulate_network()
        body = await self._run(
            _Call("expire_checkout_session", {"id": session_id}, idempotency_key),
            lambda ctx: checkout.expire(ctx, session_id),
        )
        return checkout_session_view(body)

    async def aclose(self) -> None:
        """Nothing to release: the database belongs to the caller."""

    # --- sandbox extras --------------------------------------------------------------------

    async def create_payment_method(
        self, card_number: str, exp_month: int, exp_year: int, cvc: str
    ) -> str:
        """Tokenize a test card into a `pm_…` id (stores brand/last4/expiry, never the number)."""
        await self._simulate_network()
        digits = intents.check_card_number(card_number)
        intents.check_expiry(exp_month, exp_year, now=utcnow())
        intents.check_cvc(cvc)
        card = intents.card_from_number(digits, exp_month=exp_month, exp_year=exp_year)
        pm = await self._run(
            _Call("create_payment_method", {}, None),
            lambda ctx: intents.create_payment_method(ctx, card),
        )
        return str(pm["id"])

    async def authenticate(self, intent_id: str, approve: bool) -> IntentView:
        """The customer's 3-D Secure answer (from the sandbox page; no injected latency)."""
        call = _Call("authenticate", {"id": intent_id, "approve": approve}, None)
        body = await self._run(
            call, lambda ctx: intents.authenticate(ctx, intent_id, approve=approve)
        )
        return intent_view(body)

    async def find_checkout_session(self, session_id: str) -> CheckoutSessionView | None:
        """Read a session for the hosted page: no injected latency or failures."""
        async with self._db.read() as session:
            found = await SandboxStore(session).get(session_id, checkout.OBJECT_TYPE)
        return checkout_session_view(found) if found is not None else None

    async def pay_checkout_session(
        self, session_id: str, *, card_number: str, exp_month: int, exp_year: int, cvc: str
    ) -> CheckoutSessionView:
        """The hosted page's form: a bad number or expiry raises ProviderCardError (shown on
        the page, session still open); a decline closes the session."""
        digits = intents.check_card_number(card_number)
        intents.check_expiry(exp_month, exp_year, now=utcnow())
        intents.check_cvc(cvc)
        card = intents.card_from_number(digits, exp_month=exp_month, exp_year=exp_year)
        back = f"{self.base_url}/sandbox/checkout/{session_id}/return"
        body = await self._run(
            _Call("pay_checkout_session", {"id": session_id}, None),
            lambda ctx: checkout.pay(ctx, session_id, card, back),
        )
        return checkout_session_view(body)

    async def settle_checkout_session(self, session_id: str) -> CheckoutSessionView:
        """After 3-D Secure: the intent's outcome completes or closes the session."""
        body = await self._run(
            _Call("settle_checkout_session", {"id": session_id}, None),
            lambda ctx: checkout.settle_after_authentication(ctx, session_id),
        )
        return checkout_session_view(body)

    async def expire_due_checkout_sessions(self, *, now: datetime | None = None) -> int:
        """Stripe closes sessions at `expires_at`; the worker calls this to do the same.
        `now` moves the sandbox's clock forward (like a Stripe test clock) for tests."""
        async with self._db.read() as session:
            due = await checkout.due_for_expiry(SandboxStore(session), now=now or utcnow())
        expired = 0
        for session_id in due:
            try:
                await self._run(
                    _Call("expire_checkout_session", {"id": session_id}, None),
                    _expire_operation(session_id),
                )
            except ProviderInvalidRequest:
                continue  # paid or expired meanwhile
            expired += 1
        return expired

    async def find_payment_intent_for_payment(self, payment_id: str) -> IntentView | None:
        """A scan of the sandbox's intents (no index by metadata): only retries made after
        Stripe's idempotency window ask, and the sandbox itself never forgets a key."""
        await self._simulate_network()
        async with self._db.read() as session:
            found = await SandboxStore(session).intents_with_metadata("payment_id", payment_id)
        return intent_view(found[-1]) if found else None

    async def find_payment_intent(self, intent_id: str) -> IntentView | None:
        """Read an intent for the sandbox's own pages: no injected latency or failures."""
        async with self._db.read() as session:
            pi = await SandboxStore(session).get(intent_id, "payment_intent")
        return intent_view(pi) if pi is not None else None

    async def webhook_secret(self) -> str:
        """The secret events are signed with: configured, else generated once and kept."""
        if self._configured_secrets:
            return self._configured_secrets[0]
        if self._generated_secret is None:
            self._generated_secret = await self._stored_webhook_secret()
        return self._generated_secret

    # --- machinery ---------------------------------------------------------------------------

    async def _simulate_network(self) -> None:
        """Injected latency and failures, outside any transaction (SQLite has one writer)."""
        if self._latency_s > 0:
            await asyncio.sleep(self._latency_s)
        if self._failure_rate > 0 and self._rng.random() < self._failure_rate:
            raise ProviderTransientError("sandbox injected failure")

    async def _run(self, call: _Call, operation: Operation) -> JSON:
        """Execute once per idempotency key; a concurrent duplicate waits, then replays."""
        key = call.idempotency_key
        if key is not None and len(key) > _MAX_KEY_LENGTH:
            raise ProviderInvalidRequest(
                f"Idempotency keys may be at most {_MAX_KEY_LENGTH} characters long.",
                param="idempotency_key",
            )  # fmt: skip
        for _ in range(_CLAIM_ATTEMPTS):
            try:
                outcome = await self._calls.submit((call, operation))
            except IntegrityError:
                continue  # a concurrent request with this key committed first: replay it
            return outcome.unwrap()
        raise ProviderTransientError(
            "A request with this idempotency key is still being processed; retry later.",
            code="idempotency_key_in_use",
        )

    async def _run_many(self, calls: Sequence[tuple[_Call, Operation]]) -> list[_Outcome]:
        """Concurrent API calls share one transaction (see payport.coalesce)."""
        async with self._db.transaction() as session:
            store = SandboxStore(session)
            keys = [call.idempotency_key for call, _ in calls if call.idempotency_key]
            records = await store.idempotency_records(keys)
            return [
                await self._run_in(store, call, operation, records) for call, operation in calls
            ]

    async def _run_in(
        self,
        store: SandboxStore,
        call: _Call,
        operation: Operation,
        records: Mapping[str, SandboxIdempotencyRecord],
    ) -> _Outcome:
        """One call inside the batch's transaction. `records` were loaded for the whole
        batch, so no lookup here flushes the calls before it (they flush together)."""
        now = utcnow()
        key = call.idempotency_key or None
        if key is not None:
            record = records.get(key)
            if record is not None:
                return _replay(record, call)
        ctx = RequestContext(
            store, now=now, request_id=new_id("req_"), idempotency_key=key,
            base_url=self.base_url,
        )  # fmt: skip
        try:
            outcome = _Outcome(200, await operation(ctx))
        except ProviderError as error:
            outcome = _Outcome(error.http_status, error_body(error), error)
        if key is not None:
            # Written with the effect, in one transaction: a concurrent duplicate fails on
            # the key's primary key at commit, rolls its effect back, and replays this.
            store.record_idempotency_key(key, call.fingerprint, outcome.http_status,
                                         outcome.body, now=now)  # fmt: skip
        return outcome

    async def _stored_webhook_secret(self) -> str:
        for _ in range(_CLAIM_ATTEMPTS):
            try:
                async with self._db.transaction() as session:
                    store = SandboxStore(session)
                    secret = await store.state(SIGNING_KEY_STATE_NAME)
                    if secret is None:
                        secret = "whsec_" + secrets.token_hex(16)
                        await store.set_state(SIGNING_KEY_STATE_NAME, secret)
                    return secret
            except KeyInUseError:
                continue  # another process generated it at the same moment; read theirs
        raise ProviderTransientError("could not read the sandbox webhook secret")


def _expire_operation(session_id: str) -> Operation:
    return lambda ctx: checkout.expire(ctx, session_id)


def _replay(record: SandboxIdempotencyRecord, call: _Call) -> _Outcome:
    """The saved answer, or Stripe's error when the key was first used for something else."""
    if record.fingerprint != call.fingerprint:
        raise ProviderIdempotencyError(_IDEMPOTENCY_MISMATCH.format(key=record.key))
    body: JSON = json.loads(record.body)
    if record.http_status >= 400:
        return _Outcome(record.http_status, body, error_from_body(record.http_status, body))
    return _Outcome(record.http_status, body)


def _check_transfer_amount(amount: Money) -> Money:
    try:
        currency = normalize_currency(amount.currency)
    except ValueError:
        raise ProviderInvalidRequest(
            f"Invalid currency: {amount.currency}.", param="currency"
        ) from None
    intents.check_positive(amount.amount_minor, "amount")
    if amount.amount_minor > MAX_AMOUNT_MINOR:
        raise ProviderInvalidRequest(
            "Amount must be no more than 99999999", code="amount_too_large", param="amount"
        )
    return Money(amount.amount_minor, currency)
