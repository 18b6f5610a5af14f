from siyu.kit.errors import Conflict, NotFound, ValidationFailed


class TagNotFound(NotFound):
    code = "tag_not_found"


class TagGroupNotFound(NotFound):
    code = "tag_group_not_found"


class TagNameTaken(Conflict):
    code = "tag_name_taken"


class TagGroupNameTaken(Conflict):
    code = "tag_group_name_taken"


class TagInUse(Conflict):
    """Refused: the tag is referred to by rules (or journeys); `details` lists them by name."""

    code = "tag_in_use"


class AutoTagIsRuleBound(Conflict):
    """An auto tag is kept by its rule: people cannot put it on or take it off."""

    code = "auto_tag_is_rule_bound"


class NotAnAutoTag(ValidationFailed):
    code = "not_an_auto_tag"
