"""The ASGI app: the API under /api/v1 (declared in `spec.py`), a place for the web view at /."""
