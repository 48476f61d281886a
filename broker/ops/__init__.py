"""What the clinic's IT watches: Prometheus metrics and `/healthz` of every central service."""
