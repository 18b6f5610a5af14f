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
    "events_ingested": ["segments.reevaluate", "journeys.on_events"],
    # Every event type is also published per batch under its own name (`order_paid`, `order_refunded`,
    # `check_in`, `message_received`, …) with payload: workspace_id, event_ids, customer_ids — add a
    # key here to react to one type.
    "order_paid": ["loyalty.on_events", "coupons.on_order_paid", "messaging.on_events"],
    # Replies: "TD" / "退订" opts out; any reply engages the message it answers.
    "message_received": ["messaging.on_events"],
    "order_refunded": ["loyalty.on_events", "coupons.on_order_refunded"],
    "check_in": ["loyalty.on_events"],
    "share": ["loyalty.on_events"],
    # payload: workspace_id, survivor_id, absorbed_id
    "customer_merged": ["loyalty.on_customer_merged", "coupons.on_customer_merged", "segments.apply_merge",
                        "messaging.on_customer_merged", "journeys.on_customer_merged"],
    # Tags. An auto tag's rule was created or changed. payload: workspace_id, tag_id
    "tag_rule_changed": ["segments.refresh_tag"],
    # People put a manual tag on or took it off. payload: workspace_id, tag_id, customer_ids
    "customer_tags_changed": ["segments.reevaluate"],
    # Segments and layering, for journeys to trigger on (also the names of the events on the timeline).
    # payload: workspace_id, segment_id, event_ids, customer_ids
    "segment_entered": ["journeys.on_segment_changed"],
    "segment_exited": ["journeys.on_segment_changed"],
    # payload: workspace_id, event_ids, customer_ids, changes ([customer_id, from_stage, to_stage])
    "lifecycle_changed": [],
    # Loyalty and coupons, for journeys to trigger on. payload: workspace_id, customer_id, member_id,
    # direction (enrolled | up | down | retained | merged), from_tier, to_tier
    "tier_changed": [],
    # payload: workspace_id, customer_id, member_id, points, pending, cause_key
    "points_earned": [],
    # payload: workspace_id, customer_id, template_id, cause_key
    "coupon_issued": [],
}

SCHEDULES: list[tuple[str, int]] = [
    ("jobs.purge_finished", 3600),
    ("segments.tick", 300),
    ("loyalty.release_points", 900),
    ("loyalty.expire_points", 3600),
    ("loyalty.review_tiers", 3600),
    ("loyalty.benefits_tick", 900),
    ("coupons.expire", 900),
    ("messaging.tick", 60),
    ("messaging.refresh_holdout", 86400),
    ("journeys.date_triggers", 3600),
    ("journeys.remind_tasks", 300),
]
