"""Data locations, AAMI labels and patient-grouped splits."""
