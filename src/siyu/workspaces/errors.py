from siyu.kit.errors import Conflict, NotFound, Unauthorized, ValidationFailed


class WorkspaceNotFound(NotFound):
    code = "workspace_not_found"


class SlugTaken(Conflict):
    code = "slug_taken"


class EmailTaken(Conflict):
    code = "email_taken"


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"


class InvalidRole(ValidationFailed):
    code = "invalid_role"
