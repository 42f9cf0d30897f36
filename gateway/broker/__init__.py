"""Brokers carry work items (delivery ids, never payloads) from intake to the workers."""
