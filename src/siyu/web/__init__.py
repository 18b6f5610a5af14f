"""The FastAPI app: REST API under /api/v1 and the console."""
