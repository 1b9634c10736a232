"""localstripe, patched to accept what payport really sends to Stripe. Tests only.

Run as `python -m tests.localstripe_compat --port N` (tests/localstripe_server.py does).
payport's Stripe provider must never drop a standard parameter to please a fake, so the
fake is taught the parameters instead. Each patch, and why:

1. In memory only. localstripe pickles its store to /tmp/localstripe.pickle on every
   write and reloads it at start; here nothing is written or read, so runs never share
   or inherit state. `DELETE /_config/data` wipes everything (this layer's state too).
2. Listens on 127.0.0.1 only (localstripe binds every interface).
3. Standard parameters localstripe rejects are accepted: PaymentIntent `description`
   (kept), `automatic_payment_methods` and `return_url` (checked as Stripe does: when
   redirects are allowed, a confirm needs a `return_url`; otherwise ignored, localstripe
   has no redirect methods); cancel's `cancellation_reason` and a refund's `reason`
   (validated against Stripe's values and kept on the object). A refund without an
   amount refunds the rest of what was captured, and more than that is refused, as on
   Stripe (localstripe refunds the whole charge again, and turns the uncaptured rest of a
   partial capture into a Refund of its own; here the charge records `amount_captured`).
4. PaymentIntent fields Stripe has and localstripe lacks: `amount_capturable`,
   `amount_received`, `cancellation_reason`.
5. Capture or cancel in a wrong state answers like Stripe: 400
   `payment_intent_unexpected_state` with the intent in `error.payment_intent`
   (localstripe answers a bare 400, and would capture a canceled intent).
6. Connect transfers, which localstripe lacks: `POST /v1/transfers`, `GET /v1/transfers`,
   `GET /v1/transfers/{id}`, `POST /v1/transfers/{id}/reversals`, in Stripe's shapes
   (`tr_…`, `trr_…`, amount_reversed, reversed, reversals list), with over-reversal refused.
7. Idempotent requests, which localstripe ignores: a POST with an `Idempotency-Key` is
   answered once; the same key with the same parameters replays the first answer
   (`Idempotent-Replayed: true`), with other parameters it is a 400 `idempotency_error`,
   and while the first is still running a 409.
8. Stripe's test PaymentMethods that localstripe lacks (`pm_card_mastercard`,
   `pm_card_chargeDeclined…`, `pm_card_authenticationRequired`, `pm_card_threeDSecure2Required`),
   and declines as Stripe reports them: a charge of one of Stripe's decline cards fails with its
   `code` and `decline_code`, and the 402 carries the intent in `error.payment_intent`
   (localstripe declines only some of them, always as a bare `card_declined`). The table is
   written from Stripe's documentation here, not taken from payport's sandbox, so the fake
   cannot agree with payport by construction.
9. Webhooks. localstripe waits a second before each delivery, sends none for some events
   Stripe sends, and cannot say whether a delivery is still under way. Here deliveries start
   at once and `GET /_config/compat/webhooks` answers how many are still in flight, so a
   test can wait for them. Stripe's `payment_intent.amount_capturable_updated` (a
   manual-capture confirm or 3-D Secure approval leaving the intent `requires_capture`),
   `payment_intent.requires_action` (a confirm that needs 3-D Secure),
   `payment_intent.payment_failed` after failed 3-D Secure, `payment_intent.canceled` and
   `charge.refunded` are sent too, and events carry `request.idempotency_key`, as Stripe's
   do.
10. Accounts: `POST /_config/compat/customers` with `id=cus_…` makes a customer under that id.
   Customers are owned by upstream user services (CONTRACT.md), so tests name fixed ones;
   on Stripe they already exist, here the fixture makes them.
11. Time: `DELETE /_config/compat/idempotency` forgets every idempotency key, as Stripe does
   after 24 h, so a test can send a request again after the window.
12. `GET /v1/payment_intents/search?query=metadata['KEY']:'VALUE'`: Stripe's search, for that
   one query shape (localstripe has no search at all).

Left as localstripe has them: 3-D Secure as `use_stripe_sdk` (Stripe answers `redirect_to_url`
when confirmed with a `return_url`; tests answer it through localstripe's `_authenticate`),
disputes and most other event types. tests/stripe_provider/test_stripe_errors.py, recorded
Stripe payloads (tests/webhooks/recorded.py) and the sandbox provider's tests cover them;
the README's testing section lists each gap.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import hashlib
import hmac
import json
import logging
import re
import time
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import ClientError, ClientSession, web
from localstripe import resources
from localstripe.errors import UserError
from localstripe.resources import (
    Charge,
    Customer,
    Event,
    List,
    PaymentIntent,
    PaymentMethod,
    Refund,
    StripeObject,
    extra_apis,
    random_id,
    store,
    try_convert_to_bool,
    try_convert_to_int,
)
from localstripe.webhooks import _webhooks as registered_webhooks

CANCELLATION_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation",
              "requires_action")  # fmt: skip
IDEMPOTENCY_PREFIX = "compat_idempotency:"


# --- 1. in memory only ------------------------------------------------------------------


def _no_disk(self: resources.Store) -> None:
    """Keep the store in memory (see 1.)."""


resources.Store.dump_to_disk = _no_disk
resources.Store.try_load_from_disk = _no_disk


# --- 3. and 4. PaymentIntent parameters and fields --------------------------------------


def _invalid(param: str, message: str, code: str | None = None) -> UserError:
    contents: dict[str, Any] = {"param": param}
    if code is not None:
        contents["code"] = code
    return UserError(400, message, contents)


_original_intent_init = PaymentIntent.__init__
_original_intent_create = PaymentIntent._api_create.__func__


def _intent_init(self: PaymentIntent, description: str | None = None, **kwargs: Any) -> None:
    _original_intent_init(self, **kwargs)
    self.description = description


def _intent_create(
    cls: type[PaymentIntent],
    automatic_payment_methods: dict[str, Any] | None = None,
    return_url: str | None = None,
    **data: Any,
) -> PaymentIntent:
    """Stripe refuses a confirm that allows redirects but gives nowhere to return to
    (the message below is paraphrased)."""
    methods = automatic_payment_methods or {}
    redirects = try_convert_to_bool(methods.get("enabled")) and (
        methods.get("allow_redirects", "always") != "never"
    )
    if redirects and return_url is None and try_convert_to_bool(data.get("confirm")):
        raise _invalid(
            "return_url",
            "This PaymentIntent is configured to accept payment methods enabled in your "
            "Dashboard, some of which require a return_url. Pass a return_url, or set "
            "automatic_payment_methods[allow_redirects]=never.",
        )
    intent: PaymentIntent = _original_intent_create(cls, **data)
    _announce_confirm(intent)
    return intent


def _amount_capturable(self: PaymentIntent) -> int:
    return int(self.amount) if self.status == "requires_capture" else 0


def _amount_received(self: PaymentIntent) -> int:
    if self.status != "succeeded":
        return 0
    return int(getattr(self, "_compat_received", self.amount))


def _cancellation_reason(self: PaymentIntent) -> str | None:
    return getattr(self, "_compat_cancellation_reason", None)


PaymentIntent.__init__ = _intent_init
PaymentIntent._api_create = classmethod(_intent_create)
PaymentIntent.amount_capturable = property(_amount_capturable)
PaymentIntent.amount_received = property(_amount_received)
PaymentIntent.cancellation_reason = property(_cancellation_reason)


# --- 5. capture and cancel ------------------------------------------------------------


def _unexpected_state(intent: PaymentIntent, action: str) -> UserError:
    return UserError(
        400,
        f"This PaymentIntent could not be {action} because it has a status of {intent.status}.",
        {"code": "payment_intent_unexpected_state", "payment_intent": intent._export()},
    )


def _capture(id: str, amount_to_capture: Any = None, **kwargs: Any) -> PaymentIntent:
    intent = PaymentIntent._api_retrieve(id)
    if intent.status != "requires_capture":
        raise _unexpected_state(intent, "captured")
    captured = intent.amount if amount_to_capture is None else amount_to_capture
    result: PaymentIntent = PaymentIntent._api_capture(
        id, amount_to_capture=amount_to_capture, **kwargs
    )
    intent._compat_received = try_convert_to_int(captured)
    return result


def _cancel(id: str, cancellation_reason: str | None = None, **kwargs: Any) -> PaymentIntent:
    intent = PaymentIntent._api_retrieve(id)
    if intent.status not in CANCELABLE:
        raise _unexpected_state(intent, "canceled")
    if cancellation_reason not in (None, *CANCELLATION_REASONS):
        raise _invalid("cancellation_reason", f"Invalid cancellation_reason: {cancellation_reason}")
    result: PaymentIntent = PaymentIntent._api_cancel(id, **kwargs)
    intent._compat_cancellation_reason = cancellation_reason
    _schedule_webhook(Event("payment_intent.canceled", intent))
    return result


_original_refund_init = Refund.__init__


def _refund_init(
    self: Refund, reason: str | None = None, amount: Any = None, **kwargs: Any
) -> None:
    if reason not in (None, *REFUND_REASONS):
        raise _invalid("reason", f"Invalid reason: {reason}")
    charge = _charge_to_refund(kwargs.get("charge"), kwargs.get("payment_intent"))
    if charge is not None and charge.captured:
        amount = _refundable(charge, amount)
    _original_refund_init(self, amount=amount, **kwargs)
    self.reason = reason
    _schedule_webhook(Event("charge.refunded", Charge._api_retrieve(self.charge)))


def _charge_to_refund(charge_id: str | None, intent_id: str | None) -> Charge | None:
    if isinstance(charge_id, str):
        return Charge._api_retrieve(charge_id)
    if isinstance(intent_id, str):
        latest: Charge | None = PaymentIntent._api_retrieve(intent_id).latest_charge
        return latest
    return None


def _refundable(charge: Charge, amount: Any) -> Any:
    """Stripe refunds the rest of the captured amount by default, and never more than it."""
    left = charge.amount_captured - charge.amount_refunded
    if left <= 0:
        raise _invalid(
            "charge", f"Charge {charge.id} has already been refunded.", "charge_already_refunded"
        )
    if amount is None:
        return left
    wanted = try_convert_to_int(amount)
    if type(wanted) is int and wanted > left:
        raise _invalid(
            "amount",
            f"Refund amount ({wanted}) is greater than unrefunded amount on charge ({left})",
            "amount_too_large",
        )
    return wanted


def _charge_capture(self: Charge, amount: Any, on_success: Any = None) -> None:
    """Capture all or part; Stripe records the captured amount, localstripe refunds the rest
    with a Refund object of its own, which Stripe does not create."""
    amount = self.amount if amount is None else try_convert_to_int(amount)
    if not (type(amount) is int and 0 <= amount <= self.amount) or (
        self.captured or self.status != "succeeded"
    ):
        raise UserError(400, "Bad request")

    def captured() -> None:
        self.captured = True
        self._compat_amount_captured = amount
        if on_success:
            on_success()

    self._trigger_payment(on_success=captured)


def _amount_captured(self: Charge) -> int:
    return int(getattr(self, "_compat_amount_captured", self.amount)) if self.captured else 0


Refund.__init__ = _refund_init
Charge._capture = _charge_capture
Charge.amount_captured = property(_amount_captured)


def _replace_extra_api(path: str, func: Any) -> None:
    """Swap one of localstripe's extra routes before its server module registers them."""
    for index, (method, url, _) in enumerate(extra_apis):
        if method == "POST" and url == path:
            extra_apis[index] = (method, url, func)
            return
    raise RuntimeError(f"localstripe has no route POST {path}; update tests/localstripe_compat.py")


_replace_extra_api("/v1/payment_intents/{id}/capture", _capture)
_replace_extra_api("/v1/payment_intents/{id}/cancel", _cancel)


# --- 6. Connect transfers ---------------------------------------------------------------


class Transfer(StripeObject):
    object = "transfer"
    _id_prefix = "tr_"

    def __init__(
        self,
        amount: Any = None,
        currency: str | None = None,
        destination: str | None = None,
        transfer_group: str | None = None,
        source_transaction: str | None = None,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
        amount = try_convert_to_int(amount)
        if type(amount) is not int or amount <= 0:
            raise _invalid("amount", "Invalid positive integer")
        if not currency:
            raise _invalid("currency", "Missing required param: currency.", "parameter_missing")
        if not (destination or "").startswith("acct_"):
            raise _invalid("destination", f"No such destination: '{destination}'")
        if source_transaction is not None:
            Charge._api_retrieve(source_transaction)  # 404 for an unknown charge
        super().__init__()
        self.amount = amount
        self.currency = currency.lower()
        self.destination = destination
        self.destination_payment = "py_" + random_id(14)
        self.transfer_group = transfer_group
        self.source_transaction = source_transaction
        self.source_type = "card"
        self.description = description
        self.balance_transaction = None
        self.metadata = metadata or {}
        _schedule_webhook(Event("transfer.created", self))

    @property
    def reversals(self) -> List:
        listing = List(f"/v1/transfers/{self.id}/reversals")
        listing._list = [
            obj for obj in store.values()
            if isinstance(obj, TransferReversal) and obj.transfer == self.id
        ]  # fmt: skip
        return listing

    @property
    def amount_reversed(self) -> int:
        return sum(reversal.amount for reversal in self.reversals._list)

    @property
    def reversed(self) -> bool:
        return bool(self.amount_reversed >= self.amount)


class TransferReversal(StripeObject):
    object = "transfer_reversal"
    _id_prefix = "trr_"

    def __init__(
        self,
        transfer: str | None = None,
        amount: Any = None,
        metadata: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
        parent = Transfer._api_retrieve(transfer)
        remaining = parent.amount - parent.amount_reversed
        if remaining <= 0:
            raise _invalid("amount", f"Transfer {transfer} is already fully reversed.")
        amount = remaining if amount is None else try_convert_to_int(amount)
        if type(amount) is not int or not 0 < amount <= remaining:
            raise _invalid(
                "amount", f"Reversal amount must be between 1 and {remaining}, the unreversed rest."
            )
        super().__init__()
        self.amount = amount
        self.currency = parent.currency
        self.transfer = parent.id
        self.destination_payment_refund = None
        self.source_refund = None
        self.balance_transaction = None
        self.metadata = metadata or {}

    @classmethod
    def _api_create_on(cls, id: str, **data: Any) -> TransferReversal:
        reversal = cls(transfer=id, **data)
        _schedule_webhook(Event("transfer.reversed", Transfer._api_retrieve(id)))
        return reversal


extra_apis.append(("POST", "/v1/transfers/{id}/reversals", TransferReversal._api_create_on))


# --- 8. Stripe's test payment methods and declines ---------------------------------------

TEST_CARDS = {
    "pm_card_mastercard": "5555555555554444",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
    "pm_card_authenticationRequired": "4000002760003184",
    "pm_card_threeDSecure2Required": "4000000000003220",
}
# card number -> (code, decline_code, message), as Stripe's testing page lists them
DECLINES = {
    "4000000000000002": ("card_declined", "generic_decline", "Your card was declined."),
    "4000000000009995": (
        "card_declined", "insufficient_funds", "Your card has insufficient funds."
    ),
    "4000000000000069": ("expired_card", "expired_card", "Your card has expired."),
    "4000000000000127": (
        "incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."
    ),
    "4000000000000119": (
        "processing_error", "processing_error", "An error occurred while processing your card."
    ),
    "4000000000000341": ("card_declined", "generic_decline", "Your card was declined."),
}  # fmt: skip

_original_test_article = PaymentMethod._try_get_canonical_test_article.__func__


def _test_article(cls: type[PaymentMethod], id: str) -> PaymentMethod | None:
    number = TEST_CARDS.get(id)
    if number is None:
        found: PaymentMethod | None = _original_test_article(cls, id)
        return found
    card = {"number": number, "exp_month": "12", "exp_year": "2030", "cvc": "123"}
    return PaymentMethod(type="card", card=card)


PaymentMethod._try_get_canonical_test_article = classmethod(_test_article)


def _card_number(source: str | None) -> str | None:
    if source is None:
        return None
    if source in TEST_CARDS:
        return TEST_CARDS[source]
    if source == "pm_card_visa_chargeDeclined":
        return "4000000000000002"
    return getattr(store.get(f"payment_method:{source}"), "_card_number", None)


_original_charge_init = Charge.__init__


def _charge_init(self: Charge, **kwargs: Any) -> None:
    _original_charge_init(self, **kwargs)
    decline = DECLINES.get(_card_number(kwargs.get("source")) or "")
    if decline is not None:
        self._authorized = False
        self._compat_decline = decline


def _set_auth_failure(self: Charge) -> None:
    code, _decline_code, message = getattr(
        self, "_compat_decline", ("card_declined", None, "Your card was declined.")
    )
    self.status = "failed"
    self.failure_code = code
    self.failure_message = message


def _raise_failure(self: Charge) -> None:
    """A declined confirm: 402 card_error with the decline code and the intent, as Stripe."""
    contents: dict[str, Any] = {"code": self.failure_code, "charge": self.id}
    decline = getattr(self, "_compat_decline", None)
    if decline is not None:
        contents["decline_code"] = decline[1]
    if getattr(self, "payment_intent", None):
        contents["payment_intent"] = PaymentIntent._api_retrieve(self.payment_intent)._export()
    error = UserError(402, self.failure_message, contents)
    error.body["error"]["type"] = "card_error"
    raise error


_original_last_payment_error = PaymentIntent.last_payment_error


def _last_payment_error(self: PaymentIntent) -> dict[str, Any] | None:
    error: dict[str, Any] | None = _original_last_payment_error.fget(self)
    decline = getattr(self.latest_charge, "_compat_decline", None)
    if error is not None and decline is not None:
        error = error | {"type": "card_error", "decline_code": decline[1]}
    return error


Charge.__init__ = _charge_init
Charge._set_auth_failure = _set_auth_failure
Charge._raise_failure = _raise_failure
PaymentIntent.last_payment_error = property(_last_payment_error)


# --- 9. webhooks at once, counted, with the events Stripe also sends ----------------------

_request_key: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "compat_request_key", default=None
)
_deliveries: set[asyncio.Future[None]] = set()
_sent = [0]  # deliveries started since this process began
log = logging.getLogger("localstripe.compat")


def _schedule_webhook(event: Event) -> None:
    """Send `event` to every registered endpoint now; the body is frozen as Stripe's is."""
    event.request = {"id": None, "idempotency_key": _request_key.get()}
    body = json.dumps(event._export(), sort_keys=True).encode()
    for hook in list(registered_webhooks.values()):
        if hook.events is not None and event.type not in hook.events:
            continue
        delivery = asyncio.ensure_future(_deliver(hook.url, hook.secret, body, event.type))
        _sent[0] += 1
        _deliveries.add(delivery)
        delivery.add_done_callback(_deliveries.discard)


async def _deliver(url: str, secret: str, body: bytes, event_type: str) -> None:
    timestamp = int(time.time())
    digest = hmac.new(secret.encode(), b"%d.%s" % (timestamp, body), hashlib.sha256)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": f"t={timestamp},v1={digest.hexdigest()}",
    }
    try:
        async with ClientSession() as session, session.post(url, data=body, headers=headers) as r:
            log.info("webhook %s delivered: %d", event_type, r.status)
    except ClientError as exc:
        log.info("webhook %s not delivered: %s", event_type, exc)


resources.schedule_webhook = _schedule_webhook


def _announce_confirm(intent: PaymentIntent) -> None:
    """What Stripe says after a confirm or an approval that did not fail."""
    if intent.status == "requires_capture":
        _schedule_webhook(Event("payment_intent.amount_capturable_updated", intent))
    elif intent.status == "requires_action":
        _schedule_webhook(Event("payment_intent.requires_action", intent))


def _authenticate(**kwargs: Any) -> PaymentIntent:
    intent: PaymentIntent = PaymentIntent._api_authenticate(**kwargs)
    if intent.status == "requires_payment_method":  # failed authentication
        _schedule_webhook(Event("payment_intent.payment_failed", intent))
    _announce_confirm(intent)
    return intent


# --- 10. customers under a given id -----------------------------------------------------


def _customer_with_id(customer_id: str) -> Customer:
    if not customer_id.startswith("cus_"):
        raise _invalid("id", "A customer id starts with cus_")
    existing = store.get(f"customer:{customer_id}")
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    customer = Customer()
    del store[f"customer:{customer.id}"]
    customer.id = customer_id
    store[f"customer:{customer_id}"] = customer
    return customer


# --- 12. search, for one query shape -----------------------------------------------------

_METADATA_QUERY = re.compile(r"^metadata\['([^']+)'\]:'((?:[^'\\]|\\.)*)'$")


class SearchResult:
    """Stripe's `search_result` list."""

    def __init__(self, url: str, found: list[StripeObject]) -> None:
        self.url = url
        self.found = found

    def _export(self, expand: Any = None) -> dict[str, Any]:
        return {
            "object": "search_result",
            "url": self.url,
            "has_more": False,
            "next_page": None,
            "data": [obj._export() for obj in self.found],
        }


def _search_intents(query: str = "", limit: Any = None, **kwargs: Any) -> SearchResult:
    match = _METADATA_QUERY.match(query.strip())
    if match is None or kwargs:
        raise _invalid("query", "this fake searches only metadata['KEY']:'VALUE'")
    key, quoted = match.groups()
    value = re.sub(r"\\(.)", r"\1", quoted)  # Stripe's escapes: \' and \\
    found = [
        obj for obj in store.values()
        if isinstance(obj, PaymentIntent) and (obj.metadata or {}).get(key) == value
    ]  # fmt: skip
    found.sort(key=lambda obj: obj.created, reverse=True)
    return SearchResult("/v1/payment_intents/search", found[: try_convert_to_int(limit or 10)])


extra_apis.insert(0, ("GET", "/v1/payment_intents/search", _search_intents))
_replace_extra_api("/v1/payment_intents/{id}/_authenticate", _authenticate)


# --- the server, with 6. and 7. --------------------------------------------------------

from localstripe import server  # noqa: E402  (registers routes from the patched extra_apis)


@web.middleware
async def idempotency(request: web.Request, handler: Any) -> web.StreamResponse:
    """Answer each Idempotency-Key once, as Stripe does (see 7.)."""
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        response: web.StreamResponse = await handler(request)
        return response
    body = (await request.read()).decode()
    fingerprint = json.dumps([request.path, sorted(parse_qsl(body, keep_blank_values=True))])
    record_key = IDEMPOTENCY_PREFIX + key
    record = store.get(record_key)
    if record is not None:
        return _replay(record, fingerprint, key)
    store[record_key] = {"fingerprint": fingerprint, "in_flight": True}
    _request_key.set(key)
    try:
        answer = await handler(request)
    except UserError as error:
        answer = error.to_response()
    except BaseException:
        store.pop(record_key, None)
        raise
    store[record_key] = {"fingerprint": fingerprint, "status": answer.status, "body": answer.body}
    return answer


def _replay(record: dict[str, Any], fingerprint: str, key: str) -> web.Response:
    if record["fingerprint"] != fingerprint:
        return _error(
            400,
            "idempotency_error",
            "Keys for idempotent requests can only be used with the same parameters they were "
            f"first used with. Try using a key other than '{key}' if you meant to execute a "
            "different request.",
        )
    if record.get("in_flight"):
        return _error(
            409,
            "idempotency_error",
            "There is currently another in-progress request using this Idempotent Key.",
            code="idempotency_key_in_use",
        )
    return web.Response(
        status=record["status"],
        body=record["body"],
        content_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )


def _error(status: int, kind: str, message: str, code: str | None = None) -> web.Response:
    fields = {"type": kind, "message": message, "code": code}
    return web.json_response({"error": fields}, status=status)


async def _webhooks_in_flight(request: web.Request) -> web.Response:
    return web.json_response({"pending": len(_deliveries), "sent": _sent[0]})


async def _create_customer(request: web.Request) -> web.Response:
    data = await request.post()
    customer = _customer_with_id(str(data.get("id", "")))
    return web.json_response(customer._export())


async def _forget_idempotency_keys(request: web.Request) -> web.Response:
    for key in [k for k in store if k.startswith(IDEMPOTENCY_PREFIX)]:
        del store[key]
    return web.Response()


def build_app() -> web.Application:
    app: web.Application = server.app
    app.middlewares.append(idempotency)
    app.router.add_post("/v1/transfers", server.api_create(Transfer, "/v1/transfers"))
    app.router.add_get("/v1/transfers/{id}", server.api_retrieve(Transfer, "/v1/transfers/{id}"))
    app.router.add_get("/v1/transfers", server.api_list_all(Transfer, "/v1/transfers"))
    app.router.add_get("/_config/compat/webhooks", _webhooks_in_flight)
    app.router.add_post("/_config/compat/customers", _create_customer)
    app.router.add_delete("/_config/compat/idempotency", _forget_idempotency_keys)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    web.run_app(build_app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
