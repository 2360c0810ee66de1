"""Webhooks: the events of the event log, sent to HTTP endpoints, signed, from the
store's durable outbox (store/webhooks.py), retried with backoff; the one outbound
HTTP client (httpx). Only the primary process runs the dispatcher (workers.py)."""
