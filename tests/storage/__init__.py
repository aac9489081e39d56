"""Tests of heartline.storage."""
