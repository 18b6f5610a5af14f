"""Email over SMTP (smtplib): one connection per dispatch batch, STARTTLS or SSL when configured.

The Message-ID is derived from the outbox key, so a receiving system can tell a repeat; a
List-Unsubscribe header carries the message's unsubscribe link.
"""

from __future__ import annotations

import contextlib
import hashlib
import smtplib
import socket
from email.message import EmailMessage
from email.utils import formataddr
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from siyu.messaging.channels.base import (
    CREDENTIALS_REJECTED,
    ChannelAdapter,
    ChannelLimits,
    Outcome,
    OutgoingMessage,
    SendResult,
)


class SmtpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    username: str | None = None
    password: str | None = None
    from_address: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]
    from_name: str = ""
    starttls: bool = False
    use_ssl: bool = False
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0


def message_id(idempotency_key: str, domain: str) -> str:
    return f"<{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@{domain}>"


class SmtpAdapter(ChannelAdapter):
    name = "email"
    address_type = "email"
    config_model = SmtpConfig
    config: SmtpConfig
    _smtp: smtplib.SMTP | None = None

    @property
    def limits(self) -> ChannelLimits:
        return ChannelLimits()

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            cls = smtplib.SMTP_SSL if self.config.use_ssl else smtplib.SMTP
            smtp = cls(self.config.host, self.config.port, timeout=self.config.timeout_seconds)
            try:
                if self.config.starttls:
                    smtp.starttls()
                if self.config.username:
                    smtp.login(self.config.username, self.config.password or "")
            except BaseException:
                _quietly_close(smtp)
                raise
            self._smtp = smtp
        return self._smtp

    def _drop(self) -> None:
        if self._smtp is not None:
            _quietly_close(self._smtp)
            self._smtp = None

    def build(self, message: OutgoingMessage) -> EmailMessage:
        content = message.content
        email = EmailMessage()
        email["From"] = formataddr((self.config.from_name, self.config.from_address))
        email["To"] = message.address or ""
        email["Subject"] = content.get("subject") or ""
        email["Message-ID"] = message_id(message.idempotency_key, self.config.from_address.split("@", 1)[1])
        if content.get("unsubscribe_url"):
            email["List-Unsubscribe"] = f"<{content['unsubscribe_url']}>"
        text = content.get("text", "")
        link = content.get("link")
        if isinstance(link, dict) and link.get("url"):
            text = f"{text}\n\n{link.get('title', '')}\n{link['url']}".strip()
        if content.get("image_url"):
            text = f"{text}\n\n{content['image_url']}"
        email.set_content(text)
        return email

    def send(self, message: OutgoingMessage) -> SendResult:
        if not message.address:
            return SendResult("permanent", error_code="invalid_address", error_message="no email address")
        email = self.build(message)
        try:
            smtp = self._connection()
        except smtplib.SMTPAuthenticationError as exc:
            self._drop()
            return SendResult("permanent", error_code=CREDENTIALS_REJECTED, error_message=_text(exc))
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            return SendResult("transient", error_code="smtp_connect_failed", error_message=_text(exc))
        try:
            smtp.send_message(email)
        except smtplib.SMTPRecipientsRefused as exc:
            return SendResult("permanent", error_code="invalid_address", error_message=_text(exc))
        except smtplib.SMTPSenderRefused as exc:
            return SendResult("permanent", error_code="sender_refused", error_message=_text(exc))
        except smtplib.SMTPResponseException as exc:
            self._drop()
            outcome: Outcome = "transient" if 400 <= exc.smtp_code < 500 else "permanent"
            return SendResult(outcome, error_code=f"smtp_{exc.smtp_code}", error_message=_text(exc))
        except (OSError, smtplib.SMTPException) as exc:  # the connection broke mid-message
            self._drop()
            return SendResult("ambiguous", error_code="smtp_disconnected", error_message=_text(exc))
        return SendResult("sent", provider_message_id=str(email["Message-ID"]))

    def close(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._smtp.quit()
            self._smtp = None


def _quietly_close(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError, socket.error):
        smtp.close()


def _text(exc: BaseException) -> str:
    return str(exc)[:500] or type(exc).__name__
