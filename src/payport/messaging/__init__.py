"""Commands in, events out: the envelope, the inbox, the outbox and the transports."""
