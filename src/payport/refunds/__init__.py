"""Refunds of captured payments, full or partial, with approval above a threshold."""
