"""Double-entry ledger: every cent a payment moves, posted with the state change that moved it."""
