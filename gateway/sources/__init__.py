"""Inbound transports (sources) and the contract they share (``gateway.sources.base``)."""
