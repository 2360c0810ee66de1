"""The HTTP API (/api/v1) and /metrics: served by uvicorn on the process's own event
loop (roles http / https), every operation one of admin/'s, as the CLI's are."""
