"""Stripe SDK objects as plain dicts, for the shared view builders in providers/views.py."""

from __future__ import annotations

from typing import Any

import stripe

JSON = dict[str, Any]


def plain(obj: stripe.StripeObject) -> JSON:
    """The SDK object as a plain, recursive dict: what the views keep as `raw`."""
    return obj.to_dict()
