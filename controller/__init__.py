"""The room controller: pure cores, message contract, outbox, MQTT link, daemon."""

__version__ = "0.1.0"
