"""Intake: watchdog events and scans in, settled uploads out as jobs."""
