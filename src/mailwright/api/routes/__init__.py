"""The API's resources, one module each; app.py mounts every `router` under /api/v1."""
