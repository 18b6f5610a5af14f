"""The sandbox channel: stands in for a real provider in the demo, the tests and the benchmark.

It behaves like a provider outside the store: every send is committed to `sandbox_messages` in
its own transaction before the call returns, whether or not the dispatcher later records it, and
it never de-duplicates. So a message sent twice shows up twice, and after a crash `lookup` tells
whether the provider got the message.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from siyu.kit import clock
from siyu.messaging.channels.base import ChannelAdapter, ChannelLimits, LookupAnswer, OutgoingMessage, SendResult
from siyu.messaging.models import SandboxMessage
from siyu.messaging.sql import insert_many, relaxed_commit

COLUMNS = (("workspace_id", "bigint"), ("outbox_id", "bigint"), ("idempotency_key", "text"),
           ("customer_id", "bigint"), ("address", "text"), ("content", "jsonb"), ("received_at", "timestamptz"))


class SandboxConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Customers whose messages the sandbox refuses (a permanent failure), to rehearse failures.
    reject_customer_ids: list[int] = []


class SandboxAdapter(ChannelAdapter):
    name = "sandbox"
    config_model = SandboxConfig
    config: SandboxConfig

    @property
    def limits(self) -> ChannelLimits:
        return ChannelLimits(idempotent=False, can_lookup=True, max_batch=1000)

    def send(self, message: OutgoingMessage) -> SendResult:
        return self.send_many([message])[0]

    def send_many(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        rejected = set(self.config.reject_customer_ids)
        accepted = [m for m in messages if m.customer_id not in rejected]
        if accepted:
            now = clock.now()
            with self.context.engine.begin() as conn:
                relaxed_commit(conn)  # a simulated provider: losing its log in a server crash loses no message
                insert_many(conn, "sandbox_messages", COLUMNS,
                            [(m.workspace_id, m.outbox_id, m.idempotency_key, m.customer_id, m.address, m.content, now)
                             for m in accepted])
        return [SendResult("permanent", error_code="sandbox_rejected",
                           error_message="the sandbox is configured to refuse this customer")
                if m.customer_id in rejected else SendResult("delivered") for m in messages]

    def lookup(self, idempotency_key: str) -> LookupAnswer:
        with self.context.engine.connect() as conn:
            found = conn.execute(select(SandboxMessage.id).where(
                SandboxMessage.workspace_id == self.context.workspace_id,
                SandboxMessage.idempotency_key == idempotency_key).limit(1)).first()
        return "received" if found is not None else "not_received"
