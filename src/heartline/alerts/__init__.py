"""Alerts: pure clinical rules (beats/vitals -> episodes), NEWS2, and the debouncing engine.

Imports numpy only (no torch, no web framework), so that the stream processor, the service and
a device can all run it.
"""
