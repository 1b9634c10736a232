"""Checkout sessions (seed 004): a hosted payment page per shop order, and the order
orchestration that follows its outcome (confirm, or release inventory and cancel)."""
