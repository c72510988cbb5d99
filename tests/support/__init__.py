"""Support code for the integration tests: a test backend and a real-process farm runner."""
