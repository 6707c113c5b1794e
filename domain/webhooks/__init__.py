"""Signed webhooks delivered from a transactional outbox (migration 0009): endpoints and
their secrets (``endpoints``), the Standard Webhooks signature (``signing``), which
targets may be called (``targets``) and the delivery worker (``worker``)."""
