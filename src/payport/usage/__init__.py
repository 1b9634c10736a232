"""Metered usage: events recorded once per caller event id, aggregated per period, invoiced."""
