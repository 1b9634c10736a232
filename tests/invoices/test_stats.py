"""Statistics against hand-computed fixtures written straight into the real database."""

from __future__ import annotations

from datetime import UTC, datetime

from payport.billing.models import Invoice, Plan, Subscription
from payport.payments.models import Payment
from payport.refunds.models import Refund
from tests.harness import Harness


def at(day: int, month: int = 3, hour: int = 12) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def payment(n: int, captured: int, refunded: int, when: datetime, currency: str = "usd",
            status: str = "SUCCEEDED") -> Payment:  # fmt: skip
    return Payment(id=f"00000000-0000-0000-0000-{n:012d}", order_id=f"order-{n}",
                   customer_user_id="user_stat", amount_minor=captured or 1000, currency=currency,
                   status=status, amount_captured_minor=captured, amount_refunded_minor=refunded,
                   created_at=when, updated_at=when)  # fmt: skip


def invoice(n: int, paid: int, when: datetime, status: str = "paid") -> Invoice:
    return Invoice(id=f"in_{n}", number=f"INV-2026-{n:06d}", user_id="user_stat", currency="usd",
                   status=status, billing_reason="manual", issued_at=when, total_minor=paid,
                   amount_due_minor=paid, amount_paid_minor=paid if status == "paid" else 0,
                   paid_at=when if status == "paid" else None)  # fmt: skip


def subscription(n: int, plan: str, status: str, quantity: int, started: datetime,
                 ended: datetime | None = None) -> Subscription:  # fmt: skip
    return Subscription(id=f"sub_{n}", user_id=f"user_{n}", plan_id=plan, quantity=quantity,
                        status=status, billing_cycle_anchor=started, current_period_start=started,
                        current_period_end=started, started_at=started, ended_at=ended)  # fmt: skip


async def seed(harness: Harness) -> None:
    async with harness.runtime.db.transaction() as session:
        session.add_all([
            payment(1, 2000, 0, at(1)), payment(2, 3000, 500, at(1, hour=23)),
            payment(3, 1500, 1500, at(2), status="REVERTED"),
            payment(4, 0, 0, at(2), status="AUTHORIZED"),  # held, not revenue
            payment(5, 4000, 0, at(2), currency="eur"),
            payment(6, 9999, 0, at(5, month=4)),  # outside March
        ])  # fmt: skip
        session.add_all([
            invoice(1, 2999, at(2)), invoice(2, 700, at(3, month=4)),
            invoice(3, 5000, at(2), status="open"),  # not collected
        ])  # fmt: skip
        session.add_all([
            Plan(id="monthly", name="M", amount_minor=1000, currency="usd",
                 billing_cycle="monthly"),
            Plan(id="quarterly", name="Q", amount_minor=3001, currency="usd",
                 billing_cycle="quarterly"),
            Plan(id="yearly", name="Y", amount_minor=12000, currency="eur", billing_cycle="yearly"),
        ])  # fmt: skip
        await session.flush()
        session.add_all([
            subscription(1, "monthly", "active", 2, at(1)),
            subscription(2, "quarterly", "past_due", 1, at(10, month=2)),
            subscription(3, "yearly", "active", 1, at(20)),
            subscription(4, "monthly", "trialing", 1, at(25)),
            subscription(5, "monthly", "canceled", 1, at(1, month=1), ended=at(15)),
        ])  # fmt: skip
        await session.flush()
        session.add(Refund(id="rf_1", payment_id=payment(2, 0, 0, at(1)).id,
                           amount_minor=500, currency="usd", status="succeeded",
                           provider_reason="duplicate"))  # fmt: skip


MARCH = {"start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z"}


async def test_revenue_by_day_and_month(harness: Harness) -> None:
    await seed(harness)
    daily = (await harness.client.get("/api/v1/stats/revenue", params=MARCH)).json()
    rows = [(r["period"], r["currency"], r["gross_minor"], r["refunded_minor"], r["net_minor"])
            for r in daily["data"]]  # fmt: skip
    assert rows == [
        ("2026-03-01", "usd", 5000, 500, 4500),
        ("2026-03-02", "eur", 4000, 0, 4000),
        ("2026-03-02", "usd", 1500 + 2999, 1500, 2999),
    ]
    assert daily["totals"] == {
        "eur": {"gross_minor": 4000, "refunded_minor": 0, "net_minor": 4000},
        "usd": {"gross_minor": 9499, "refunded_minor": 2000, "net_minor": 7499},
    }
    monthly = await harness.client.get(
        "/api/v1/stats/revenue",
        params={"period": "month", "currency": "USD", "start": "2026-01-01T00:00:00Z",
                "end": "2027-01-01T00:00:00Z"},
    )  # fmt: skip
    months = [(r["period"], r["net_minor"], r["payments"], r["invoices"])
              for r in monthly.json()["data"]]  # fmt: skip
    assert months == [("2026-03", 7499, 3, 1), ("2026-04", 10699, 1, 1)]


async def test_subscription_stats_mrr_arr_new_churned(harness: Harness) -> None:
    await seed(harness)
    body = (await harness.client.get("/api/v1/stats/subscriptions", params=MARCH)).json()
    assert (body["active"], body["trialing"], body["past_due"], body["live"]) == (2, 1, 1, 4)
    assert (body["new"], body["churned"]) == (3, 1)  # sub_1, sub_3, sub_4 / sub_5
    # usd: 2 x 10.00 monthly + 30.01 quarterly / 3 = 2000 + 1000.33 -> 3000; ARR 2000*12 + 3001*4
    assert body["recurring_revenue"] == {
        "eur": {"mrr_minor": 1000, "arr_minor": 12000},
        "usd": {"mrr_minor": 3000, "arr_minor": 36004},
    }


async def test_overall_stats_and_info(harness: Harness) -> None:
    await seed(harness)
    body = (await harness.client.get("/api/v1/stats")).json()
    assert body["payments"] == [  # amount_minor is what was asked: 1000 when nothing captured
        {"status": "AUTHORIZED", "currency": "usd", "count": 1, "amount_minor": 1000},
        {"status": "REVERTED", "currency": "usd", "count": 1, "amount_minor": 1500},
        {"status": "SUCCEEDED", "currency": "eur", "count": 1, "amount_minor": 4000},
        {"status": "SUCCEEDED", "currency": "usd", "count": 3, "amount_minor": 2000 + 3000 + 9999},
    ]
    assert body["usage_records"] == 0
    assert body["subscriptions"] == {"active": 2, "canceled": 1, "past_due": 1, "trialing": 1}
    assert {"status": "succeeded", "currency": "usd", "count": 1, "amount_minor": 500} in body[
        "refunds"
    ]
    paid = next(row for row in body["invoices"] if row["status"] == "paid")
    assert (paid["count"], paid["amount_minor"]) == (2, 3699)
    info = (await harness.client.get("/info")).json()
    assert info["service"] == "payport" and info["version"]
    assert info["refund_approval_threshold_minor"] == 10_000
    assert "sk_" not in str(info) and "database_url" not in info


async def test_bad_stats_input_names_the_field(harness: Harness) -> None:
    for params, field in [
        ({"period": "week"}, "period"),
        ({"currency": "zzz"}, "currency"),
        ({"start": "2026-04-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}, "start"),
    ]:
        response = await harness.client.get("/api/v1/stats/revenue", params=params)
        assert response.status_code in (400, 422), response.text
        assert response.json()["field"] == field
