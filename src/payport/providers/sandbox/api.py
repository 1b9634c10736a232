"""The sandbox's 3-D Secure page: what a customer sees when their bank asks them to confirm.

Self-contained HTML (no external assets); every value shown is escaped.
"""

from __future__ import annotations

from html import escape
from typing import Annotated
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from payport.money import Money
from payport.providers.base import (
    PI_REQUIRES_ACTION,
    PI_REQUIRES_CAPTURE,
    PI_SUCCEEDED,
    IntentView,
    ProviderError,
)
from payport.providers.sandbox.objects import return_url
from payport.providers.sandbox.provider import SandboxProvider

TITLE = "payport sandbox — 3-D Secure"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
}
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;"
    "color:#1a1a1a}h1{font-size:1.25rem}.amount{font-size:2rem;margin:1rem 0}"
    "form{display:inline-block;margin-right:.5rem}button{font-size:1rem;padding:.5rem 1.5rem;"
    "border-radius:.375rem;border:1px solid #888;cursor:pointer}"
    ".approve{background:#0a7d32;color:#fff;border-color:#0a7d32}.fail{background:#fff}"
    ".muted{color:#666;font-size:.875rem}"
)

sandbox_router = APIRouter(prefix="/sandbox", tags=["sandbox"])


async def get_sandbox_provider(request: Request) -> SandboxProvider:
    """The app's provider, if it is the sandbox; these pages do not exist otherwise."""
    provider = getattr(request.app.state, "provider", None)
    if not isinstance(provider, SandboxProvider):
        raise HTTPException(status_code=404)
    return provider


SandboxDep = Annotated[SandboxProvider, Depends(get_sandbox_provider)]


@sandbox_router.get("/authenticate/{intent_id}", response_class=HTMLResponse)
async def authentication_page(intent_id: str, provider: SandboxDep) -> HTMLResponse:
    intent = await provider.find_payment_intent(intent_id)
    if intent is None:
        return _not_found()
    if intent.status != PI_REQUIRES_ACTION:
        body = (
            f"<p>This payment is <strong>{escape(intent.status)}</strong>; nothing to confirm.</p>"
        )
        return _page(_amount(intent) + body)
    action = f"/sandbox/authenticate/{escape(intent.id)}"
    body = (
        _amount(intent)
        + "<p>Your bank asks you to confirm this payment.</p>"
        + f'<form method="post" action="{action}/approve">'
        + '<button class="approve" type="submit">Approve</button></form>'
        + f'<form method="post" action="{action}/fail">'
        + '<button class="fail" type="submit">Fail</button></form>'
        + '<p class="muted">Test mode: no real bank is involved.</p>'
    )
    return _page(body)


@sandbox_router.post("/authenticate/{intent_id}/approve", response_model=None)
async def approve_authentication(intent_id: str, provider: SandboxDep) -> Response:
    return await _answer(provider, intent_id, approve=True)


@sandbox_router.post("/authenticate/{intent_id}/fail", response_model=None)
async def fail_authentication(intent_id: str, provider: SandboxDep) -> Response:
    return await _answer(provider, intent_id, approve=False)


async def _answer(provider: SandboxProvider, intent_id: str, *, approve: bool) -> Response:
    """Record the customer's answer, then send them back where the merchant asked."""
    before = await provider.find_payment_intent(intent_id)
    if before is None:
        return _not_found()
    try:
        intent = await provider.authenticate(intent_id, approve)
    except ProviderError as error:
        return _page(f"<p>{escape(error.message)}</p>", status_code=409)
    back_to = return_url(before.raw)
    if back_to is not None and urlsplit(back_to).scheme in ("http", "https"):
        return RedirectResponse(_redirect_target(back_to, intent), status_code=303)
    outcome = "approved" if approve else "failed"
    return _page(
        _amount(intent) + f"<p>Authentication {outcome}. The payment is now "
        f"<strong>{escape(intent.status)}</strong>. You can close this page.</p>"
    )


def _redirect_target(url: str, intent: IntentView) -> str:
    """The return_url with Stripe's redirect parameters appended."""
    authorized = intent.status in (PI_SUCCEEDED, PI_REQUIRES_CAPTURE)
    params = urlencode({
        "payment_intent": intent.id,
        "payment_intent_client_secret": intent.raw.get("client_secret") or "",
        "redirect_status": "succeeded" if authorized else "failed",
    })  # fmt: skip
    parts = urlsplit(url)
    query = f"{parts.query}&{params}" if parts.query else params
    return urlunsplit(parts._replace(query=query))


def _amount(intent: IntentView) -> str:
    major = Money(intent.amount_minor, intent.currency).to_major()
    return f'<p class="amount">{escape(str(major))} {escape(intent.currency.upper())}</p>'


def _not_found() -> HTMLResponse:
    return _page("<p>No such payment.</p>", status_code=404)


def sandbox_page(body: str, *, title: str, style: str, status_code: int = 200) -> HTMLResponse:
    """One of the sandbox's own pages: no scripts, nothing cached, never framed."""
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{style}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


def _page(body: str, *, status_code: int = 200) -> HTMLResponse:
    return sandbox_page(body, title=TITLE, style=_STYLE, status_code=status_code)
