"""Tests of heartline.ingestion."""
