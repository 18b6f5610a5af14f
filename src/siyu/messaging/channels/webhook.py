"""Signed outbound webhooks: each message is POSTed as JSON to the workspace's endpoint.

Headers: `X-Siyu-Timestamp` (unix seconds), `X-Siyu-Signature: v1=<hex HMAC-SHA256(secret,
"{timestamp}.{body}")>` and `X-Siyu-Idempotency-Key`. A receiver checks the signature, refuses a
timestamp older than five minutes (no replays) and de-duplicates on the key, which is what makes a
retry after a timeout safe (the adapter is `idempotent` by this contract).
"""

from __future__ import annotations

import secrets
from typing import Annotated

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from siyu.messaging.channels.base import (
    ChannelAdapter,
    ChannelContext,
    ChannelLimits,
    OutgoingMessage,
    SendResult,
    classify_http_status,
    hmac_hex,
)

TOLERANCE_SECONDS = 300


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl
    secret: Annotated[str, Field(min_length=16)]
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return "v1=" + hmac_hex(secret, f"{timestamp}.".encode() + body)


def verify_signature(secret: str, body: bytes, timestamp: str, signature_header: str, now: float,
                     tolerance: int = TOLERANCE_SECONDS) -> bool:
    """For receivers (and tests): a valid signature over a fresh timestamp."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent_at) > tolerance:
        return False
    return secrets.compare_digest(signature(secret, sent_at, body), signature_header)


class WebhookAdapter(ChannelAdapter):
    name = "webhook"
    config_model = WebhookConfig
    config: WebhookConfig

    def __init__(self, context: ChannelContext) -> None:
        super().__init__(context)
        self._client = httpx.Client(timeout=self.config.timeout_seconds, transport=context.http_transport)

    @property
    def limits(self) -> ChannelLimits:
        return ChannelLimits(idempotent=True)

    def send(self, message: OutgoingMessage) -> SendResult:
        from siyu.kit import clock

        now = clock.now()
        body = orjson.dumps({"id": message.idempotency_key, "message_id": message.outbox_id,
                             "customer_id": message.customer_id, "purpose": message.purpose,
                             "content": message.content, "sent_at": now.isoformat()})
        timestamp = int(now.timestamp())
        headers = {"Content-Type": "application/json", "X-Siyu-Timestamp": str(timestamp),
                   "X-Siyu-Signature": signature(self.config.secret, timestamp, body),
                   "X-Siyu-Idempotency-Key": message.idempotency_key}
        try:
            response = self._client.post(str(self.config.url), content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            return SendResult("transient", error_code="connect_failed", error_message=str(exc)[:500])
        except httpx.TimeoutException as exc:
            return SendResult("ambiguous", error_code="timeout", error_message=str(exc)[:500] or "timed out")
        except httpx.HTTPError as exc:
            return SendResult("ambiguous", error_code="transport_error", error_message=str(exc)[:500])
        outcome, error = classify_http_status(response.status_code)
        if outcome == "sent":
            return SendResult("sent")
        return SendResult(outcome, error_code=error, error_message=response.text[:300])

    def close(self) -> None:
        self._client.close()
