"""The web admin (/admin/…): server-rendered pages over admin/'s operations, for an
admin who never opens a terminal. Its own accounts and browser sessions; no SQL here."""
