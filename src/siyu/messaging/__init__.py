"""Outbound messaging: the outbox, the contact policy (不打扰), templates, channel adapters and broadcasts (群发).

Every message siyu sends goes one way: `enqueue_message` (or a broadcast's fill) evaluates the contact
policy and writes an outbox row; dispatch workers claim due rows, verify the policy again, call the
channel adapter and record the attempt and the outcome. See docs/adr/0004-outbox-and-contact-policy.md.
"""
