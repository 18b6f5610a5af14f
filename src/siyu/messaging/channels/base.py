"""The one interface every channel adapter implements: send, look up, parse receipts, limits.

An adapter never touches the outbox: the dispatcher hands it `OutgoingMessage`s and records the
`SendResult`s it returns. Outcomes say what the caller may do next:

- `sent` / `delivered`: the provider accepted (or already delivered) the message;
- `transient`: it was certainly not sent and may be tried again (connection refused, 5xx, 429);
- `permanent`: it was not sent and trying again will not help (bad address, rejected credentials);
- `ambiguous`: it may have been sent (a timeout after the request left). Retried only when the
  adapter is `idempotent` (the provider de-duplicates on our key); otherwise the message ends
  `unknown` and is never sent again by itself.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine

from siyu.messaging.errors import ChannelConfigInvalid, ReceiptRejected

Outcome = Literal["sent", "delivered", "transient", "permanent", "ambiguous"]
LookupAnswer = Literal["received", "not_received", "unknown"]
CREDENTIALS_REJECTED = "channel_credentials_rejected"
SECRET_FIELDS = frozenset({"secret", "password", "api_secret", "token"})


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    outbox_id: int
    workspace_id: int
    customer_id: int
    idempotency_key: str
    address: str | None
    purpose: str
    content: dict[str, Any]
    staff_id: str | None = None


@dataclass(slots=True)
class SendResult:
    outcome: Outcome
    provider_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelLimits:
    idempotent: bool = False  # the provider de-duplicates repeated calls carrying the same key
    can_lookup: bool = False  # lookup(key) can tell whether a message was received
    max_batch: int = 1  # messages per send_many call


@dataclass(slots=True)
class Receipt:
    """A delivery report, or an inbound reply, parsed from a provider callback."""

    kind: Literal["delivered", "failed", "reply"]
    provider_message_id: str | None = None
    idempotency_key: str | None = None
    address: str | None = None
    text: str | None = None
    error: str | None = None
    at: datetime | None = None


@dataclass
class ChannelContext:
    engine: Engine
    workspace_id: int
    config: dict[str, Any]
    http_transport: httpx.BaseTransport | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ChannelAdapter:
    name: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    # The identity type a recipient needs (phone, email, wecom_external_userid); None: any customer.
    address_type: ClassVar[str | None] = None

    def __init__(self, context: ChannelContext) -> None:
        self.context = context
        self.config = self.config_model.model_validate(context.config)

    # -- configuration --------------------------------------------------------------------------
    @classmethod
    def validate_config(cls, data: dict[str, Any]) -> dict[str, Any]:
        try:
            return cls.config_model.model_validate(data).model_dump(mode="json")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ChannelConfigInvalid(f"{cls.name} config {where}: {first['msg']}",
                                       field=f"config.{where}") from exc

    @classmethod
    def redact(cls, config: dict[str, Any]) -> dict[str, Any]:
        return {k: ("***" if k in SECRET_FIELDS and v else v) for k, v in config.items()}

    # -- sending --------------------------------------------------------------------------------
    @property
    def limits(self) -> ChannelLimits:
        raise NotImplementedError

    def send(self, message: OutgoingMessage) -> SendResult:
        raise NotImplementedError

    def send_many(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        return [self.send(m) for m in messages]

    def lookup(self, idempotency_key: str) -> LookupAnswer:
        """Did the provider receive the message with this key? Used after a crash."""
        return "unknown"

    def parse_receipt(self, body: bytes, headers: Mapping[str, str], now: datetime) -> list[Receipt]:
        raise ReceiptRejected(f"the {self.name} channel takes no callbacks")

    def close(self) -> None:
        return None


def hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def classify_http_status(status: int) -> tuple[Outcome, str | None]:
    """The usual meaning of an HTTP answer from a provider."""
    if 200 <= status < 300:
        return "sent", None
    if status in (401, 403):
        return "permanent", CREDENTIALS_REJECTED
    if status == 429 or status >= 500:
        return "transient", f"http_{status}"
    return "permanent", f"http_{status}"
