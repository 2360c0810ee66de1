"""One module per section of the web admin; each lists its ROUTES (web/app.py)."""
