"""The public face of messaging for other domains and the entry points: every business rule lives
in the module named here, this one only gathers them.

- sending one message: `enqueue_message` (siyu.messaging.sending)
- the contact policy: `ContactPolicy` (siyu.messaging.policy), settings (siyu.messaging.settings)
- templates: siyu.messaging.template_service; broadcasts: siyu.messaging.broadcasts
- dispatch and crash recovery: siyu.messaging.dispatch
- consents and opt-outs: siyu.messaging.preferences; clicks, unsubscribes, receipts: siyu.messaging.engagement
"""

from __future__ import annotations

from siyu.messaging.broadcasts import (
    broadcast_results,
    cancel_broadcast,
    create_broadcast,
    pause_broadcast,
    preview_broadcast,
    resume_broadcast,
    start_broadcast,
)
from siyu.messaging.deliveries import cancel_message, contact_status, list_messages, message_story, retry_message
from siyu.messaging.dispatch import dispatch_due
from siyu.messaging.preferences import grant_one_time_consents, set_preference
from siyu.messaging.recovery import recover_expired
from siyu.messaging.sending import enqueue_message, submit_message

__all__ = [
    "broadcast_results", "cancel_broadcast", "cancel_message", "contact_status", "create_broadcast", "dispatch_due",
    "enqueue_message", "grant_one_time_consents", "list_messages", "message_story", "pause_broadcast",
    "preview_broadcast", "recover_expired", "resume_broadcast", "retry_message", "set_preference",
    "start_broadcast", "submit_message",
]
