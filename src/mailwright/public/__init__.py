"""The public HTTP endpoints: what recipients' mail programs and users' mail clients
reach with no credential (open/click tracking, one-click unsubscribe, client
autoconfiguration). Each module is one concern; site.py mounts them."""
