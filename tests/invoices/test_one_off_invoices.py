"""One-off invoices: lines and totals, numbers under concurrency, PDFs, bad input."""

from __future__ import annotations

import asyncio
import io
import re
from typing import Any

from pypdf import PdfReader

from tests.harness import Harness

LINES = [
    {"description": "Consulting, March", "quantity": 3, "amount": "120.50"},
    {"description": "Setup fee", "amount_minor": 5000},
    {"description": "Loyalty discount", "kind": "discount", "amount_minor": 1000},
    {"description": "Sales tax 8%", "kind": "tax", "amount_minor": 3212},
]


async def _create(harness: Harness, **fields: Any) -> dict[str, Any]:
    body = {"user_id": "user_ivy", "lines": LINES} | fields
    response = await harness.client.post("/api/v1/invoices", json=body)
    assert response.status_code == 201, response.text
    invoice: dict[str, Any] = response.json()
    return invoice


async def test_one_off_invoice_totals_its_lines_in_minor_units(harness: Harness) -> None:
    # Lines sent as raw JSON text, so 120.50 is parsed from the text, not via a float.
    raw = (
        b'{"user_id": "user_ivy", "lines": [{"description": "Consulting", "quantity": 3,'
        b' "amount": 120.50}, {"description": "Tax", "kind": "tax", "amount_minor": 2892}]}'
    )
    response = await harness.client.post(
        "/api/v1/invoices", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text
    invoice = response.json()
    assert [line["amount_minor"] for line in invoice["lines"]] == [36150, 2892]
    assert invoice["total_minor"] == invoice["amount_due_minor"] == 39042
    assert invoice["status"] == "open"
    assert invoice["billing_reason"] == "manual"
    assert re.fullmatch(r"INV-\d{4}-\d{6}", invoice["number"])
    fetched = await harness.client.get(f"/api/v1/invoices/{invoice['invoice_id']}")
    assert fetched.status_code == 200
    assert fetched.json()["lines"] == invoice["lines"]


async def test_discount_and_tax_lines(harness: Harness) -> None:
    invoice = await _create(harness)
    amounts = [(line["kind"], line["amount_minor"]) for line in invoice["lines"]]
    assert amounts == [("one_off", 36150), ("one_off", 5000), ("discount", -1000), ("tax", 3212)]
    assert invoice["total_minor"] == 36150 + 5000 - 1000 + 3212


async def test_draft_then_finalize_then_void(harness: Harness) -> None:
    invoice = await _create(harness, draft=True)
    assert invoice["status"] == "draft"
    invoice_id = invoice["invoice_id"]
    finalized = await harness.client.post(f"/api/v1/invoices/{invoice_id}/finalize")
    assert finalized.json()["status"] == "open"
    again = await harness.client.post(f"/api/v1/invoices/{invoice_id}/finalize")
    assert again.status_code == 409
    assert again.json()["field"] == "status"
    voided = await harness.client.post(f"/api/v1/invoices/{invoice_id}/void")
    assert voided.json()["status"] == "void"
    await harness.drain()
    types = [event["type"] for event in await harness.all_events()]
    assert types.count("invoice.created") == 1
    assert "invoice.finalized" in types and "invoice.voided" in types


async def test_customer_list_holds_only_their_invoices_newest_first(harness: Harness) -> None:
    first = await _create(harness)
    second = await _create(harness)
    await _create(harness, user_id="user_other")
    response = await harness.client.get("/api/v1/invoices", params={"user_id": "user_ivy"})
    numbers = [row["number"] for row in response.json()["data"]]
    assert numbers == [second["number"], first["number"]]
    by_path = await harness.client.get("/api/v1/invoices/customer/user_ivy")
    assert [row["number"] for row in by_path.json()["data"]] == numbers


async def test_invoices_created_at_once_get_unique_consecutive_numbers(harness: Harness) -> None:
    created = await asyncio.gather(*(_create(harness) for _ in range(30)))
    numbers = sorted(int(invoice["number"].rsplit("-", 1)[1]) for invoice in created)
    assert numbers == list(range(1, 31))


async def test_pdf_reads_back_number_lines_and_total(harness: Harness) -> None:
    invoice = await _create(harness)
    response = await harness.client.get(f"/api/v1/invoices/{invoice['invoice_id']}/pdf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    text = PdfReader(io.BytesIO(response.content)).pages[0].extract_text()
    assert invoice["number"] in text
    assert "Consulting, March" in text and "Sales tax 8%" in text
    assert "433.62 USD" in text  # 361.50 + 50.00 - 10.00 + 32.12
    assert "-10.00 USD" in text


async def test_bad_invoice_input_names_the_field_and_stores_nothing(harness: Harness) -> None:
    cases = [
        ({"user_id": "u", "lines": []}, "lines"),
        ({"lines": LINES}, "user_id"),
        ({"user_id": "u", "lines": [{"description": "x", "amount": "1.001"}]}, "lines.0.amount"),
        ({"user_id": "u", "lines": [{"description": "x"}]}, "lines.0.amount"),
        ({"user_id": "u", "lines": [{"description": "x", "amount_minor": -5}]}, "lines.0.amount"),
        ({"user_id": "u", "currency": "xyz", "lines": LINES}, "currency"),
        ({"user_id": "u", "lines": [{"description": "x", "amount_minor": 1, "qty": 2}]},
         "lines.0.qty"),
        ({"user_id": "u", "subscription_id": "sub_missing", "lines": LINES}, "subscription_id"),
    ]  # fmt: skip
    for body, field in cases:
        response = await harness.client.post("/api/v1/invoices", json=body)
        assert response.status_code in (400, 404), (body, response.text)
        assert response.json()["field"] == field, (body, response.text)
    listed = await harness.client.get("/api/v1/invoices", params={"user_id": "u"})
    assert listed.json()["data"] == []
    first = await _create(harness)
    assert first["number"].endswith("-000001")  # refused bodies took no number
    missing = await harness.client.get("/api/v1/invoices/in_missing/pdf")
    assert missing.status_code == 404 and missing.json()["field"] == "invoice_id"


async def test_one_off_invoice_is_written_off_once_and_drafts_never(harness: Harness) -> None:
    invoice = await _create(harness)
    invoice_id = invoice["invoice_id"]
    written_off = await harness.client.post(f"/api/v1/invoices/{invoice_id}/mark_uncollectible")
    assert written_off.json()["status"] == "uncollectible"
    again = await harness.client.post(f"/api/v1/invoices/{invoice_id}/mark_uncollectible")
    assert again.status_code == 409 and again.json()["field"] == "status"
    draft = await _create(harness, draft=True)
    refused = await harness.client.post(
        f"/api/v1/invoices/{draft['invoice_id']}/mark_uncollectible"
    )
    assert refused.status_code == 409  # draft -> uncollectible is not in the table
