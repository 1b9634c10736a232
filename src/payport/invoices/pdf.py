"""An invoice as a one-page PDF (fpdf2): header, customer, lines, totals in major units.

The core fonts speak Latin-1 only, so text outside it is replaced rather than
failing the render.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from payport.billing.models import Invoice, InvoiceLine
from payport.money import currency_exponent


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def format_amount(amount_minor: int, currency: str) -> str:
    """`1234` usd -> `12.34 USD`, exactly (Decimal, no floats)."""
    exponent = currency_exponent(currency)
    value = Decimal(amount_minor).scaleb(-exponent)
    return f"{value:,.{exponent}f} {currency.upper()}"


def _row(pdf: FPDF, cells: Sequence[tuple[str, float, str]], *, bold: bool = False) -> None:
    pdf.set_font("Helvetica", "B" if bold else "", 10)
    for text, width, align in cells:
        pdf.cell(width, 7, _latin1(text), border="B", align=align)
    pdf.ln(7)


def render_invoice_pdf(invoice: Invoice, lines: Sequence[InvoiceLine], *, issuer: str) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(_latin1(f"Invoice {invoice.number}"))
    pdf.set_creator("payport")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 20)
    pdf.cell(0, 12, "INVOICE", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 10)
    facts = [
        ("Invoice number", invoice.number),
        ("Status", invoice.status),
        ("Issued", invoice.issued_at.strftime("%Y-%m-%d")),
        ("Billed to", invoice.user_id),
        ("From", issuer),
    ]
    if invoice.subscription_id:
        facts.append(("Subscription", invoice.subscription_id))
    if invoice.period_start and invoice.period_end:
        period = f"{invoice.period_start:%Y-%m-%d} to {invoice.period_end:%Y-%m-%d}"
        facts.append(("Period", period))
    for label, value in facts:
        pdf.cell(40, 6, _latin1(label))
        pdf.cell(0, 6, _latin1(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(6)
    _row(pdf, [("Description", 100, "L"), ("Qty", 20, "R"), ("Amount", 60, "R")], bold=True)
    for line in lines:
        shown = format_amount(line.amount_minor, line.currency)
        _row(pdf, [(line.description, 100, "L"), (str(line.quantity), 20, "R"), (shown, 60, "R")])
    pdf.ln(3)
    totals = [
        ("Subtotal", invoice.subtotal_minor),
        ("Total", invoice.total_minor),
        ("Amount due", invoice.amount_due_minor),
        ("Amount paid", invoice.amount_paid_minor),
    ]
    for caption, amount in totals:
        pdf.set_font("Helvetica", "B" if caption == "Amount due" else "", 10)
        pdf.cell(120, 7, caption, align="R")
        pdf.cell(60, 7, format_amount(amount, invoice.currency), align="R")
        pdf.ln(7)
    return bytes(pdf.output())
