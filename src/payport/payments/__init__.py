"""Escrow payments: authorize (hold), release (capture + transfer), revert (cancel/refund)."""
