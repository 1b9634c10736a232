"""Every table, imported in one place so metadata and migrations see them all."""

from payport.billing import models as billing_models  # noqa: F401 - registers its tables
from payport.checkout.models import CheckoutPayment, OrderCall
from payport.db import Base
from payport.idempotency import IdempotencyRecord
from payport.ledger import models as ledger_models  # noqa: F401 - registers its tables
from payport.messaging.models import InboxEntry, LocalCommand, OutboxEvent, WorkerLease
from payport.payments.models import Payment
from payport.providers.sandbox.models import (
    SandboxIdempotencyRecord,
    SandboxObject,
    SandboxState,
    SandboxWebhookDelivery,
)
from payport.refunds.models import Refund
from payport.usage import models as usage_models  # noqa: F401 - registers its tables
from payport.webhooks.models import ProviderEvent

__all__ = [
    "Base",
    "CheckoutPayment",
    "IdempotencyRecord",
    "InboxEntry",
    "LocalCommand",
    "OrderCall",
    "OutboxEvent",
    "Payment",
    "ProviderEvent",
    "Refund",
    "SandboxIdempotencyRecord",
    "SandboxObject",
    "SandboxState",
    "SandboxWebhookDelivery",
    "WorkerLease",
]
