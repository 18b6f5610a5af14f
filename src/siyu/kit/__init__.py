"""Shared machinery only: clock, errors, ids, pagination, db helpers."""
