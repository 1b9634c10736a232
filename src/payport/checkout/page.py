"""The sandbox's hosted checkout page: what Stripe Checkout is for a Stripe session.

Card number, expiry and CVC post back here; the sandbox charges the test card, completes
or closes the session, and sends the signed webhooks. Self-contained HTML, values escaped.
"""

from __future__ import annotations

from html import escape
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from payport.money import Money
from payport.providers.base import (
    CS_COMPLETE,
    CS_OPEN,
    CheckoutSessionView,
    ProviderCardError,
    ProviderError,
)
from payport.providers.sandbox.api import SandboxDep, sandbox_page
from payport.providers.sandbox.provider import SandboxProvider

router = APIRouter(prefix="/sandbox/checkout", tags=["sandbox"], include_in_schema=False)

TITLE = "payport sandbox — Checkout"
PLACEHOLDER = "{CHECKOUT_SESSION_ID}"
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;"
    "color:#1a1a1a}h1{font-size:1.25rem}.amount{font-size:2rem;margin:1rem 0}"
    "label{display:block;margin:.75rem 0 .25rem}input{font-size:1rem;padding:.4rem;width:100%;"
    "box-sizing:border-box}button{margin-top:1rem;font-size:1rem;padding:.5rem 1.5rem;"
    "background:#0a7d32;color:#fff;border:0;border-radius:.375rem;cursor:pointer}"
    ".error{color:#b00020}.muted{color:#666;font-size:.875rem}td{padding:.15rem .5rem 0 0}"
)


@router.get("/{session_id}", response_class=HTMLResponse)
async def checkout_page(session_id: str, provider: SandboxDep) -> Response:
    session = await provider.find_checkout_session(session_id)
    if session is None:
        return _page("<p>No such checkout.</p>", status_code=404)
    return _show(session)


@router.post("/{session_id}", response_model=None)
async def pay(session_id: str, request: Request, provider: SandboxDep) -> Response:
    session = await provider.find_checkout_session(session_id)
    if session is None:
        return _page("<p>No such checkout.</p>", status_code=404)
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode(errors="replace")).items()}
    month, year = _expiry(form.get("expiry", ""))
    try:
        paid = await provider.pay_checkout_session(
            session_id,
            card_number=form.get("number", ""),
            exp_month=month,
            exp_year=year,
            cvc=form.get("cvc", "").strip(),
        )
    except ProviderCardError as error:
        return _form(session, error=error.message, status_code=400)
    except ProviderError as error:
        return _page(f"<p>{escape(error.message)}</p>", status_code=409)
    return await _after_payment(provider, paid)


@router.get("/{session_id}/return", response_model=None)
async def back_from_authentication(session_id: str, provider: SandboxDep) -> Response:
    """The 3-D Secure page sends the customer here; the intent's outcome settles the session."""
    try:
        session = await provider.settle_checkout_session(session_id)
    except ProviderError as error:
        return _page(f"<p>{escape(error.message)}</p>", status_code=404)
    return await _after_payment(provider, session)


async def _after_payment(provider: SandboxProvider, session: CheckoutSessionView) -> Response:
    if session.status == CS_COMPLETE:
        return RedirectResponse(_fill(session, session.raw["success_url"]), status_code=303)
    if session.status == CS_OPEN and session.payment_intent:
        intent = await provider.find_payment_intent(session.payment_intent)
        if intent is not None and intent.next_action_url:
            return RedirectResponse(intent.next_action_url, status_code=303)
    declined = session.raw.get("sandbox_last_error")
    if session.status == CS_OPEN and declined:
        return _form(session, error=f"Payment failed: {declined}", status_code=402)
    return _show(session)


def _show(session: CheckoutSessionView) -> HTMLResponse:
    if session.status == CS_OPEN:
        return _form(session)
    if session.status == CS_COMPLETE:
        link = escape(_fill(session, session.raw["success_url"]))
        return _page(_summary(session) + f'<p>Paid. <a href="{link}">Back to the shop</a></p>')
    link = escape(_fill(session, session.raw["cancel_url"]))
    return _page(
        _summary(session)
        + '<p class="error" id="outcome">This checkout has expired.</p>'
        + "<p>It is closed; no money was taken.</p>"
        + f'<p><a href="{link}">Back to the shop</a></p>',
        status_code=410,
    )


def _form(
    session: CheckoutSessionView, *, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    action = f"/sandbox/checkout/{escape(session.id)}"
    problem = f'<p class="error" id="outcome">{escape(error)}</p>' if error else ""
    cancel = escape(_fill(session, session.raw["cancel_url"]))
    body = (
        _summary(session)
        + problem
        + f'<form method="post" action="{action}">'
        + '<label for="number">Card number</label>'
        + '<input id="number" name="number" inputmode="numeric" autocomplete="cc-number" '
        + 'placeholder="4242 4242 4242 4242" required>'
        + '<label for="expiry">Expiry (MM/YY)</label>'
        + '<input id="expiry" name="expiry" autocomplete="cc-exp" placeholder="12/34" required>'
        + '<label for="cvc">CVC</label>'
        + '<input id="cvc" name="cvc" inputmode="numeric" autocomplete="cc-csc" '
        + 'placeholder="123" required>'
        + f'<button type="submit" id="pay">Pay {escape(_major(session))}</button></form>'
        + f'<p class="muted">Test mode: use a test card. <a href="{cancel}">Cancel</a></p>'
    )
    return _page(body, status_code=status_code)


def _summary(session: CheckoutSessionView) -> str:
    rows = "".join(
        f"<tr><td>{escape(str(item['name']))}</td><td>x {int(item['quantity'])}</td></tr>"
        for item in session.raw.get("sandbox_line_items") or []
    )
    return f'<p class="amount">{escape(_major(session))}</p><table>{rows}</table>'


def _major(session: CheckoutSessionView) -> str:
    major = Money(session.amount_total_minor, session.currency).to_major()
    return f"{major} {session.currency.upper()}"


def _fill(session: CheckoutSessionView, url: str) -> str:
    return url.replace(PLACEHOLDER, session.id)


def _expiry(value: str) -> tuple[int, int]:
    """`MM/YY`, `MM / YYYY` or `MMYY`; nonsense becomes month 0, which the sandbox refuses."""
    digits = value.replace(" ", "").replace("/", "")
    if not digits.isdigit() or len(digits) not in (4, 6):
        return 0, 0
    month, year = int(digits[:2]), int(digits[2:])
    return month, year + 2000 if year < 100 else year


def _page(body: str, *, status_code: int = 200) -> HTMLResponse:
    return sandbox_page(body, title=TITLE, style=_STYLE, status_code=status_code)
