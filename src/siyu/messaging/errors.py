from siyu.kit.errors import Conflict, NotFound, Unauthorized, ValidationFailed


class TemplateNotFound(NotFound):
    code = "template_not_found"


class TemplateInvalid(ValidationFailed):
    code = "template_invalid"


class UnknownTemplateVariable(ValidationFailed):
    code = "unknown_template_variable"


class TemplateNameTaken(Conflict):
    code = "template_name_taken"


class UnknownChannel(ValidationFailed):
    code = "unknown_channel"


class ChannelConfigInvalid(ValidationFailed):
    code = "channel_config_invalid"


class ChannelDisabled(Conflict):
    code = "channel_disabled"


class MessageNotFound(NotFound):
    code = "message_not_found"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class MessageNotRetryable(Conflict):
    code = "message_not_retryable"


class BroadcastNotFound(NotFound):
    code = "broadcast_not_found"


class BroadcastStateConflict(Conflict):
    code = "broadcast_state"


class EmptyAudience(ValidationFailed):
    code = "empty_audience"


class AudienceInvalid(ValidationFailed):
    code = "audience_invalid"


class ReceiptRejected(Unauthorized):
    code = "receipt_rejected"


class LinkNotFound(NotFound):
    code = "link_not_found"
