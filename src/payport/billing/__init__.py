"""Subscription billing: plans, subscriptions, invoices, renewals, proration and dunning."""
