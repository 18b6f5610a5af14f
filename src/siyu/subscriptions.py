"""The one readable registry of cross-domain reactions.

`SUBSCRIPTIONS` maps a domain event name to the job kinds that handle it. Publishing an event
inside a transaction writes one job row per subscriber (see `siyu.jobs.service.publish`): the rows
become visible to workers only when the transaction commits and vanish with a rollback, and each
subscriber is retried on its own.

Job handlers live in each domain's `tasks.py` (`@job_handler("kind")`), loaded by the worker.
`SCHEDULES` lists periodic ticks: (job kind, interval in seconds).
"""

from __future__ import annotations

SUBSCRIPTIONS: dict[str, list[str]] = {
    # Every ingested batch. payload: workspace_id, event_ids (row ids), customer_ids, types
    "events_ingested": [],
    # Every event type is also published per batch under its own name (`order_paid`, `order_refunded`,
    # `check_in`, `message_received`, …) with payload: workspace_id, event_ids, customer_ids — add a
    # key here to react to one type.
    # payload: workspace_id, survivor_id, absorbed_id
    "customer_merged": [],
}

SCHEDULES: list[tuple[str, int]] = [
    ("jobs.purge_finished", 3600),
]
