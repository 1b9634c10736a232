"""payport: escrow payments, checkout and billing for event-driven services."""

__version__ = "0.1.0"
