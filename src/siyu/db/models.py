"""Imports every domain's models so the metadata (and Alembic autogenerate) sees all tables."""

from siyu.audit import models as audit_models
from siyu.customers import models as customer_models
from siyu.events import models as event_models
from siyu.jobs import models as job_models
from siyu.workspaces import models as workspace_models

__all__ = ["audit_models", "customer_models", "event_models", "job_models", "workspace_models"]
