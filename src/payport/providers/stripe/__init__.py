"""The Stripe provider: payport's provider port over the official `stripe` SDK."""

from payport.providers.stripe.provider import StripeProvider, build_stripe_provider

__all__ = ["StripeProvider", "build_stripe_provider"]
