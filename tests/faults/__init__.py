"""Fault tests: backends whose servers misbehave (a server that never answers, ...)."""
