"""Tracker backends, one module each. Nothing here imports an optional dependency."""
