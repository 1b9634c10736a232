"""Payment providers behind one port: the in-process sandbox and Stripe."""
