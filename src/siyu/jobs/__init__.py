"""Due rows claimed by workers; domain events delivered to subscribers after commit."""
