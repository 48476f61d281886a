"""A throw-away PostgreSQL cluster for tests, benchmarks and the demo."""
