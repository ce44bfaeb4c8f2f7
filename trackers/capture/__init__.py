"""Automatic capture of metrics other libraries log (enabled per run, see ``trackers.env``)."""
