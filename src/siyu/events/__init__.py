"""The event catalogue, ingestion (API, import), orders and refunds."""
