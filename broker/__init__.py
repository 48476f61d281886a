"""The central side: Mosquitto config and PKI, the logger, the staff board."""
