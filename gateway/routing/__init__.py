"""Routing configuration: senders, destinations and routes by municipality and service."""
