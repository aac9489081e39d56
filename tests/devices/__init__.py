"""Tests of heartline.devices."""
