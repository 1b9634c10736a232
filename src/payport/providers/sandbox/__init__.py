"""The sandbox provider: Stripe's test-mode semantics in-process, state in payport's database."""

from payport.providers.sandbox.api import sandbox_router
from payport.providers.sandbox.provider import SandboxProvider
from payport.providers.sandbox.webhooks import SandboxWebhookDeliverer

__all__ = ["SandboxProvider", "SandboxWebhookDeliverer", "sandbox_router"]
