"""Device I/O on the Pi: GPIO drivers, monitor parsers and transports, simulators."""
