"""Errors of the journeys domain, each with a stable code."""

from __future__ import annotations

from typing import Any

from siyu.kit.errors import Conflict, NotFound, ValidationFailed


class JourneyNotFound(NotFound):
    code = "journey_not_found"


class JourneyInvalid(ValidationFailed):
    """A definition that cannot run: every issue names its step and field."""

    code = "journey_invalid"

    def __init__(self, issues: list[Any]) -> None:
        first = issues[0]
        super().__init__(str(first), field=first.field_path, details=[i.as_dict() for i in issues])
        self.issues = issues


class JourneyNameTaken(Conflict):
    code = "journey_name_taken"


class JourneyStateConflict(Conflict):
    """Pausing a draft, enrolling into an archived journey, publishing an archived one…"""

    code = "journey_state_conflict"


class RunNotFound(NotFound):
    code = "run_not_found"


class MigrationInvalid(ValidationFailed):
    code = "run_migration_invalid"


class TaskNotFound(NotFound):
    code = "task_not_found"


class TaskAlreadyClosed(Conflict):
    code = "task_already_closed"


class TemplateUnknown(NotFound):
    code = "journey_template_not_found"


class CycleNotFound(NotFound):
    code = "cycle_not_found"
