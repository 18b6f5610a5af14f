"""SMS through a configurable HTTP provider: signed requests, per-provider error mapping, signed
callbacks for delivery reports and replies (上行, where "TD" / "退订" opts a customer out).

The request is `POST {url}` with JSON `{app_key, to, sign_name, text, request_id}` and headers
`X-Siyu-App-Key`, `X-Siyu-Timestamp`, `X-Siyu-Nonce` and `X-Siyu-Signature` =
hex(HMAC-SHA256(secret, "{timestamp}\\n{nonce}\\n{body}")). Callbacks carry the same headers,
signed by the provider with the same secret. The answer's `code_field` tells success
(`success_codes`) from failure; `error_map` maps provider codes to what siyu does about them.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from siyu.kit.timefmt import parse_aware
from siyu.messaging.channels.base import (
    CREDENTIALS_REJECTED,
    ChannelAdapter,
    ChannelContext,
    ChannelLimits,
    OutgoingMessage,
    Receipt,
    SendResult,
    classify_http_status,
    hmac_hex,
)
from siyu.messaging.errors import ReceiptRejected

ErrorClass = Literal["transient", "permanent", "invalid_address", "credentials"]
DEFAULT_ERROR_MAP: dict[str, ErrorClass] = {
    "RATE_LIMITED": "transient", "SYSTEM_BUSY": "transient",
    "INVALID_MOBILE": "invalid_address", "MOBILE_BLACKLISTED": "invalid_address",
    "AUTH_FAILED": "credentials", "SIGNATURE_INVALID": "credentials",
    "BALANCE_INSUFFICIENT": "permanent", "TEMPLATE_REJECTED": "permanent",
}
CALLBACK_TOLERANCE_SECONDS = 300


class SmsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl
    app_key: Annotated[str, Field(min_length=1)]
    secret: Annotated[str, Field(min_length=8)]
    sign_name: str = ""
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    code_field: str = "code"
    success_codes: list[str] = ["OK", "0"]
    message_id_field: str = "message_id"
    message_field: str = "message"
    error_map: dict[str, ErrorClass] = {}
    dedupes_request_id: bool = True  # the provider answers a repeated request_id without sending again


def sign_headers(app_key: str, secret: str, body: bytes, timestamp: int, nonce: str | None = None) -> dict[str, str]:
    nonce = nonce or secrets.token_hex(8)
    signature = hmac_hex(secret, f"{timestamp}\n{nonce}\n".encode() + body)
    return {"X-Siyu-App-Key": app_key, "X-Siyu-Timestamp": str(timestamp), "X-Siyu-Nonce": nonce,
            "X-Siyu-Signature": signature, "Content-Type": "application/json"}


class HttpSmsAdapter(ChannelAdapter):
    name = "sms"
    address_type = "phone"
    config_model = SmsConfig
    config: SmsConfig

    def __init__(self, context: ChannelContext) -> None:
        super().__init__(context)
        self._client = httpx.Client(timeout=self.config.timeout_seconds, transport=context.http_transport)

    @property
    def limits(self) -> ChannelLimits:
        return ChannelLimits(idempotent=self.config.dedupes_request_id)

    def send(self, message: OutgoingMessage) -> SendResult:
        from siyu.kit import clock

        body = orjson.dumps({"app_key": self.config.app_key, "to": message.address,
                             "sign_name": self.config.sign_name, "text": message.content.get("text", ""),
                             "request_id": message.idempotency_key})
        headers = sign_headers(self.config.app_key, self.config.secret, body, int(clock.now().timestamp()))
        try:
            response = self._client.post(str(self.config.url), content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            return SendResult("transient", error_code="connect_failed", error_message=str(exc)[:500])
        except httpx.TimeoutException as exc:
            return SendResult("ambiguous", error_code="timeout", error_message=str(exc)[:500])
        except httpx.HTTPError as exc:
            return SendResult("ambiguous", error_code="transport_error", error_message=str(exc)[:500])
        return self._result(response)

    def _result(self, response: httpx.Response) -> SendResult:
        try:
            data = response.json()
        except ValueError:
            data = {}
        data = data if isinstance(data, dict) else {}
        code = str(data.get(self.config.code_field, "")) or None
        message = str(data.get(self.config.message_field) or response.text[:300])
        if 200 <= response.status_code < 300 and code in self.config.success_codes:
            provider_id = data.get(self.config.message_id_field)
            return SendResult("sent", provider_message_id=str(provider_id) if provider_id else None)
        if code is not None and code not in self.config.success_codes:
            error_class = {**DEFAULT_ERROR_MAP, **self.config.error_map}.get(code)
            if error_class is not None:
                return _mapped(error_class, code, message)
        outcome, error = classify_http_status(response.status_code)
        if outcome == "sent":  # a 2xx without a success code: the provider refused it
            return SendResult("permanent", error_code=f"provider_{code or 'unknown'}", error_message=message)
        return SendResult(outcome, error_code=error if code is None else f"{error}:{code}", error_message=message)

    def parse_receipt(self, body: bytes, headers: Mapping[str, str], now: datetime) -> list[Receipt]:
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            timestamp = int(lowered.get("x-siyu-timestamp", ""))
        except ValueError as exc:
            raise ReceiptRejected("callback has no valid X-Siyu-Timestamp") from exc
        if abs(now.timestamp() - timestamp) > CALLBACK_TOLERANCE_SECONDS:
            raise ReceiptRejected("callback timestamp is too old or in the future (replay?)")
        expected = sign_headers(self.config.app_key, self.config.secret, body, timestamp,
                                lowered.get("x-siyu-nonce", ""))["X-Siyu-Signature"]
        if not secrets.compare_digest(expected, lowered.get("x-siyu-signature", "")):
            raise ReceiptRejected("callback signature does not match")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ReceiptRejected("callback body is not JSON") from exc
        receipts = [_report(item) for item in data.get("reports", []) if isinstance(item, dict)]
        receipts += [Receipt("reply", address=str(item.get("from", "")), text=str(item.get("text", "")),
                             at=_when(item.get("at"))) for item in data.get("replies", []) if isinstance(item, dict)]
        return receipts

    def close(self) -> None:
        self._client.close()


def _mapped(error_class: ErrorClass, code: str, message: str) -> SendResult:
    if error_class == "transient":
        return SendResult("transient", error_code=f"provider_{code}", error_message=message)
    if error_class == "credentials":
        return SendResult("permanent", error_code=CREDENTIALS_REJECTED, error_message=f"{code}: {message}")
    if error_class == "invalid_address":
        return SendResult("permanent", error_code="invalid_address", error_message=f"{code}: {message}")
    return SendResult("permanent", error_code=f"provider_{code}", error_message=message)


def _report(item: dict[str, Any]) -> Receipt:
    delivered = str(item.get("status", "")).upper() in ("DELIVERED", "DELIVRD", "SUCCESS")
    return Receipt("delivered" if delivered else "failed", provider_message_id=_str(item.get("message_id")),
                   idempotency_key=_str(item.get("request_id")), error=_str(item.get("error")),
                   at=_when(item.get("at")))


def _str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _when(value: Any) -> datetime | None:
    return parse_aware(str(value), "at") if value else None
