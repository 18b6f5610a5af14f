from siyu.kit.errors import Conflict, NotFound, ValidationFailed


class SegmentNotFound(NotFound):
    code = "segment_not_found"


class SegmentNameTaken(Conflict):
    code = "segment_name_taken"


class SegmentInUse(Conflict):
    """Refused: the segment is referred to by rules (or journeys); `details` lists them by name."""

    code = "segment_in_use"


class SegmentIsDynamic(Conflict):
    """Members of a dynamic segment follow its rule; they cannot be added or removed by hand."""

    code = "segment_is_dynamic"


class SegmentIsStatic(Conflict):
    code = "segment_is_static"


class BuiltinSegment(Conflict):
    """Ready-made segments (RFM classes) keep their rule."""

    code = "builtin_segment"


class InvalidLayeringSettings(ValidationFailed):
    code = "invalid_layering_settings"
