"""Provider webhooks: verified on the raw body, stored once by event id, then processed."""
