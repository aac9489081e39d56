"""The package version (one source: read by ``heartline.__version__`` and the beat-set cache keys)."""

__version__ = "0.1.0"
