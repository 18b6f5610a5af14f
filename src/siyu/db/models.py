"""Imports every domain's models so the metadata (and Alembic autogenerate) sees all tables."""

from siyu.domains import domain_modules

MODEL_MODULES = domain_modules("models")
