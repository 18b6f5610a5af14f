from siyu.kit.errors import ValidationFailed


class BatchTooLarge(ValidationFailed):
    status = 413
    code = "batch_too_large"
