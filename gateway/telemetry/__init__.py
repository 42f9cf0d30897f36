"""What operators see of a running gateway: structured logs (``logs``) and Prometheus
metrics (``metrics``). Imports nothing of the gateway: every layer above may use it."""
