"""The notifier: calls routed by tier to phones (webhook and ntfy push), idempotent (issue 15)."""
