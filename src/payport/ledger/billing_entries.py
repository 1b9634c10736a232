"""The entry a paid invoice posts: what the customer paid, the balance used, what was earned.

| line                      | amount                                            |
|---------------------------|---------------------------------------------------|
| customer:{user}           | -paid (+1 payment when money came in)             |
| customer_credit:{user}    | ending balance - starting balance (credit used/granted) |
| billing_revenue           | +sum of the invoice's positive lines              |
| proration_credits         | sum of its negative lines (credits for unused time) |

paid = total - (ending - starting), so the lines sum to zero. The cause is
`invoice:{invoice_id}`: an invoice marked paid twice posts once, however it was paid.

An invoice paid out of band (cash, a bank transfer) posts the same lines: the revenue was
earned and the customer did pay, only not through the provider. Its entry's kind,
`invoice_out_of_band`, says so, so a comparison with the provider's charges leaves it out.
"""

from __future__ import annotations

from payport.ledger import accounts
from payport.ledger.drafts import Draft, EntryKind, Line


def invoice_paid(
    *,
    invoice_id: str,
    user_id: str,
    currency: str,
    line_amounts: list[int],
    amount_paid_minor: int,
    balance_change_minor: int,
    out_of_band: bool = False,
) -> Draft:
    charges = sum(amount for amount in line_amounts if amount > 0)
    credits = sum(amount for amount in line_amounts if amount < 0)
    lines = (
        Line(accounts.customer(user_id), -amount_paid_minor, 1 if amount_paid_minor else 0),
        Line(accounts.customer_credit(user_id), balance_change_minor),
        Line(accounts.BILLING_REVENUE, charges),
        Line(accounts.PRORATION_CREDITS, credits),
    )
    kept = tuple(line for line in lines if line.amount_minor or line.payment_count)
    kind = EntryKind.INVOICE_OUT_OF_BAND if out_of_band else EntryKind.INVOICE
    return Draft(f"{EntryKind.INVOICE.value}:{invoice_id}", kind, None, currency, kept)
