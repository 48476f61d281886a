"""Simulated sites and rooms for load tests of the central side (`roomctl fleet`)."""
