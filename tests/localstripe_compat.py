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
   (validated against Stripe's values and kept on the object).
4. PaymentIntent fields Stripe has and localstripe lacks: `amount_capturable`,
   `amount_received`, `cancellation_reason`.
5. Capture or cancel in a wrong state answers like Stripe: 400
   `payment_intent_unexpected_state` with the intent in `error.payment_intent`
   (localstripe answers a bare 400, and would capture a canceled intent).
6. Connect transfers, which localstripe lacks: `POST /v1/transfers`,
   `GET /v1/transfers/{id}`, `POST /v1/transfers/{id}/reversals`, in Stripe's shapes
   (`tr_…`, `trr_…`, amount_reversed, reversed, reversals list), with over-reversal refused.
7. Idempotent requests, which localstripe ignores: a POST with an `Idempotency-Key` is
   answered once; the same key with the same parameters replays the first answer
   (`Idempotent-Replayed: true`), with other parameters it is a 400 `idempotency_error`,
   and while the first is still running a 409.

Left as localstripe has them: decline codes and `error.payment_intent` on a declined
confirm, 3-D Secure as `redirect_to_url` (localstripe answers `use_stripe_sdk`), over-refund
checks, most webhook event types. tests/stripe_provider/test_stripe_errors.py covers the first two
on Stripe-shaped payloads; the sandbox provider's tests cover them all.
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from localstripe import resources
from localstripe.errors import UserError
from localstripe.resources import (
    Charge,
    Event,
    List,
    PaymentIntent,
    Refund,
    StripeObject,
    extra_apis,
    random_id,
    schedule_webhook,
    store,
    try_convert_to_bool,
    try_convert_to_int,
)

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
    return result


_original_refund_init = Refund.__init__


def _refund_init(self: Refund, reason: str | None = None, **kwargs: Any) -> None:
    if reason not in (None, *REFUND_REASONS):
        raise _invalid("reason", f"Invalid reason: {reason}")
    _original_refund_init(self, **kwargs)
    self.reason = reason


Refund.__init__ = _refund_init


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
        schedule_webhook(Event("transfer.created", self))

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
        schedule_webhook(Event("transfer.reversed", Transfer._api_retrieve(id)))
        return reversal


extra_apis.append(("POST", "/v1/transfers/{id}/reversals", TransferReversal._api_create_on))


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


def build_app() -> web.Application:
    app: web.Application = server.app
    app.middlewares.append(idempotency)
    app.router.add_post("/v1/transfers", server.api_create(Transfer, "/v1/transfers"))
    app.router.add_get("/v1/transfers/{id}", server.api_retrieve(Transfer, "/v1/transfers/{id}"))
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    web.run_app(build_app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
