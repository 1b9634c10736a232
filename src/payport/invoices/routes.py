"""Invoice routes under /api/v1: create one-off invoices, list a customer's, render PDFs.

Retrieving one (`GET /api/v1/invoices/{invoice_id}`) is billing's route; the bodies
here use the same view, so both answer the same shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Protocol

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payport.billing.invoices import lines_of
from payport.billing.models import Invoice, PaymentAttempt
from payport.billing.schemas import parse_body
from payport.billing.states import InvoiceStatus
from payport.billing.views import invoice_summary, invoice_view
from payport.http import FastJSONResponse, RuntimeDep, documented_body
from payport.invoices import service
from payport.invoices.pdf import render_invoice_pdf
from payport.invoices.schemas import InvoiceBody
from payport.runtime import Runtime

router = APIRouter(prefix="/api/v1/invoices", tags=["invoices"])


class InvoiceMove(Protocol):
    """A status move of one invoice, made inside the caller's transaction."""

    def __call__(self, session: AsyncSession, invoice: Invoice, *, at: datetime) -> None: ...


async def _full_view(runtime: Runtime, invoice_id: str) -> JSONResponse:
    async with runtime.db.read() as session:
        invoice = await service.get_invoice(session, invoice_id)
        attempts = await session.scalars(
            select(PaymentAttempt)
            .where(PaymentAttempt.invoice_id == invoice_id)
            .order_by(PaymentAttempt.number)
        )
        body = invoice_view(invoice, await lines_of(session, invoice_id), list(attempts))
    return FastJSONResponse(body)


@router.post(
    "",
    status_code=201,
    summary="Create a one-off invoice with line items (tax as a line of kind `tax`)",
    openapi_extra=documented_body(InvoiceBody),
)
async def create_invoice(request: Request, runtime: RuntimeDep) -> JSONResponse:
    body = parse_body(InvoiceBody, await request.body())
    async with runtime.db.transaction() as session:
        invoice = await service.create_invoice(
            session,
            body,
            default_currency=runtime.settings.default_currency,
            issued_at=runtime.billing.clock.now(),
        )
        invoice_id = invoice.id
    runtime.outbox_ready.notify()
    answer = await _full_view(runtime, invoice_id)
    answer.status_code = 201
    return answer


@router.get("", summary="A customer's invoices, newest first")
async def list_invoices(
    runtime: RuntimeDep,
    user_id: Annotated[str, Query(min_length=1, max_length=255)],
    status: InvoiceStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JSONResponse:
    async with runtime.db.read() as session:
        rows = await service.invoices_of_customer(session, user_id, status=status, limit=limit + 1)
    return FastJSONResponse(
        {
            "object": "list",
            "user_id": user_id,
            "data": [invoice_summary(row) for row in rows[:limit]],
            "has_more": len(rows) > limit,
            "url": "/api/v1/invoices",
        }
    )


@router.get("/customer/{user_id}", summary="A customer's invoices (path form)")
async def list_customer_invoices(user_id: str, runtime: RuntimeDep) -> JSONResponse:
    return await list_invoices(runtime, user_id=user_id)


@router.get(
    "/{invoice_id}/pdf",
    summary="The invoice as a PDF",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def invoice_pdf(invoice_id: str, runtime: RuntimeDep) -> Response:
    async with runtime.db.read() as session:
        invoice = await service.get_invoice(session, invoice_id)
        lines = await lines_of(session, invoice_id)
    document = render_invoice_pdf(invoice, lines, issuer="payport")
    return Response(
        document,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{invoice.number}.pdf"'},
    )


async def _move(runtime: Runtime, invoice_id: str, move: InvoiceMove) -> JSONResponse:
    """Lock the invoice, apply one status move on the engine's clock, answer its new view."""
    async with runtime.db.transaction() as session:
        invoice = await service.get_invoice(session, invoice_id, for_update=True)
        move(session, invoice, at=runtime.billing.clock.now())
    runtime.outbox_ready.notify()
    return await _full_view(runtime, invoice_id)


@router.post("/{invoice_id}/finalize", summary="Finalize a draft invoice (draft -> open)")
async def finalize_invoice(invoice_id: str, runtime: RuntimeDep) -> JSONResponse:
    return await _move(runtime, invoice_id, service.finalize)


@router.post("/{invoice_id}/void", summary="Void a one-off invoice")
async def void_invoice(invoice_id: str, runtime: RuntimeDep) -> JSONResponse:
    return await _move(runtime, invoice_id, service.void)


@router.post("/{invoice_id}/mark_uncollectible", summary="Write off an open one-off invoice")
async def mark_uncollectible(invoice_id: str, runtime: RuntimeDep) -> JSONResponse:
    return await _move(runtime, invoice_id, service.write_off)
