"""Durable state: submissions, attachments, deliveries, the event log and work items."""
