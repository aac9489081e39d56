"""The storage layer's error base class (re-exported by :mod:`heartline.storage.repository`)."""

from __future__ import annotations

from heartline.errors import HeartlineError

__all__ = ["StorageError"]


class StorageError(HeartlineError):
    """A storage operation cannot be carried out."""
