"""Which journeys use a segment or a tag — asked by segments and tags before they delete one."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.journeys.definitions import parse_definition, references
from siyu.journeys.models import ARCHIVED, Journey, JourneyVersion


def _users(session: Session, workspace_id: int, kind: str, ref_id: int) -> list[str]:
    found = []
    journeys = session.execute(select(Journey.id, Journey.name, Journey.draft, Journey.published_version_id)
                               .where(Journey.workspace_id == workspace_id, Journey.status != ARCHIVED))
    for _, name, draft, version_id in journeys:
        documents = [draft]
        if version_id is not None:
            documents.append(session.scalar(select(JourneyVersion.definition).where(JourneyVersion.id == version_id)))
        for document in documents:
            definition, _ = parse_definition(document)
            if definition is not None and any(k == kind and i == ref_id for _, _, k, i in references(definition)):
                found.append(f"journey {name}")
                break
    return sorted(found)


def segment_users(session: Session, workspace_id: int, segment_id: int) -> list[str]:
    return _users(session, workspace_id, "segment", segment_id)


def tag_users(session: Session, workspace_id: int, tag_id: int) -> list[str]:
    return _users(session, workspace_id, "tag", tag_id)
