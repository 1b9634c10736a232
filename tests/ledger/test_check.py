"""`payport ledger check` passes on an honest database and names every payment that is off."""

from __future__ import annotations

import asyncio
import os
import sys

from sqlalchemy import text

from payport.ledger.check import check
from tests.harness import Harness
from tests.ledger.helpers import assert_ledger_clean, authorized, released, reverted


async def ledger_check_cli(harness: Harness, *args: str) -> tuple[int, str]:
    """`payport ledger check` in a process of its own, against the harness's database."""
    env = {**os.environ, "DATABASE_URL": harness.runtime.settings.database_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from payport.ledger.cli import ledger_app; ledger_app()",
        "check",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def execute(harness: Harness, sql: str, **params: object) -> None:
    async with harness.runtime.db.transaction() as session:
        await session.execute(text(sql), params)


async def every_path(harness: Harness) -> dict[str, str]:
    held = await authorized(harness, "order-c-held")
    paid = await released(harness, "order-c-paid")
    refunded = await released(harness, "order-c-refunded")
    await reverted(harness, refunded)
    canceled = await authorized(harness, "order-c-canceled")
    await reverted(harness, canceled)
    return {"held": held, "paid": paid, "refunded": refunded, "canceled": canceled}


async def test_a_clean_ledger_passes_with_the_provider(harness: Harness) -> None:
    await every_path(harness)
    report = await assert_ledger_clean(harness)
    assert report.entries == 1 + 3 + 6 + 2
    code, output = await ledger_check_cli(harness, "--provider")
    assert code == 0, output
    assert "ledger check OK: 12 entries, 4 payments" in output


async def test_a_rewritten_posting_is_named_by_its_payment(harness: Harness) -> None:
    paths = await every_path(harness)
    await execute(
        harness,
        "UPDATE ledger_postings SET amount_minor = amount_minor + 1 "
        "WHERE account = 'runner:runner_bob' AND entry_id = "
        "(SELECT id FROM ledger_entries WHERE cause = :cause)",
        cause=f"transfer:{paths['paid']}",
    )
    report = await check(harness.runtime.db)
    assert report.payment_ids == [paths["paid"]]
    messages = [str(p) for p in report.problems]
    assert any(f"entry transfer:{paths['paid']} does not balance" in m for m in messages)
    assert any("account runner:runner_bob" in m for m in messages)  # drifted from its rows
    code, output = await ledger_check_cli(harness)
    assert code == 1
    assert f"payments: {paths['paid']}" in output


async def test_a_tampered_balance_row_is_named(harness: Harness) -> None:
    paths = await every_path(harness)
    await execute(
        harness,
        "UPDATE ledger_balances SET balance_minor = 7 WHERE account = :account",
        account=f"escrow:{paths['refunded']}",
    )
    report = await check(harness.runtime.db)
    assert paths["refunded"] in report.payment_ids
    assert any("escrow has 7 (expected 0)" in str(p) for p in report.problems)


async def test_money_left_in_escrow_of_a_final_payment_is_named(harness: Harness) -> None:
    paths = await every_path(harness)
    await execute(
        harness, "UPDATE payments SET status = 'REVERTED' WHERE id = :id", id=paths["held"]
    )
    report = await check(harness.runtime.db)
    assert report.payment_ids == [paths["held"]]
    assert "REVERTED: hold has 2500 (expected 0)" in str(report.problems[0])


async def test_a_release_that_does_not_split_is_named(harness: Harness) -> None:
    paths = await every_path(harness)
    await execute(
        harness, "UPDATE payments SET fee_minor = fee_minor + 1 WHERE id = :id", id=paths["paid"]
    )
    report = await check(harness.runtime.db)
    assert report.payment_ids == [paths["paid"]]
    assert "should be transfer + fee" in str(report.problems[0])


async def test_money_the_provider_moved_behind_payports_back_is_named(harness: Harness) -> None:
    paths = await every_path(harness)
    await assert_ledger_clean(harness)
    intent = (await harness.payment_by_order("order-c-held"))["paymentIntentId"]
    await harness.runtime.provider.capture_payment_intent(
        intent, amount_minor=None, idempotency_key="outside-payport"
    )
    assert (await check(harness.runtime.db)).ok  # the ledger alone cannot know
    report = await check(harness.runtime.db, provider=harness.runtime.provider)
    assert report.payment_ids == [paths["held"]]
    assert "captured: the ledger has 0, the provider 2500" in str(report.problems[0])
    code, output = await ledger_check_cli(harness, "--provider")
    assert code == 1
    assert paths["held"] in output


async def test_an_empty_database_passes(harness: Harness) -> None:
    report = await check(harness.runtime.db, provider=harness.runtime.provider)
    assert report.ok and report.entries == 0 and report.payments == 0
