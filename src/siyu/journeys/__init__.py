"""Journeys and SOPs: versioned automation graphs, their durable runs, staff tasks and replenishment
cycles. See docs/adr/0005-journey-execution.md."""
