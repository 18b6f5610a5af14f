"""Recording and reading audit entries. Entries are never updated or deleted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.models import AuditEntry
from siyu.kit import clock


def record_audit(session: Session, workspace_id: int, actor: str, action: str, subject_type: str,
                 subject_id: object, details: dict[str, Any] | None = None) -> AuditEntry:
    entry = AuditEntry(workspace_id=workspace_id, actor=actor, action=action, subject_type=subject_type,
                       subject_id=str(subject_id), details=details or {}, at=clock.now())
    session.add(entry)
    session.flush()
    return entry


def audit_trail(session: Session, workspace_id: int, subject_type: str, subject_id: object) -> list[AuditEntry]:
    stmt = (select(AuditEntry)
            .where(AuditEntry.workspace_id == workspace_id, AuditEntry.subject_type == subject_type,
                   AuditEntry.subject_id == str(subject_id))
            .order_by(AuditEntry.id.desc()))
    return list(session.scalars(stmt))
