"""Streaming beat pipeline shared by the live stream processor and offline classification."""

from heartline.pipeline.beat_pipeline import (
    BeatBatch,
    BeatPipeline,
    ClassifiedBeat,
    ClassifiedBeats,
    classify_batches,
    classify_record,
    prepare_many,
)

__all__ = [
    "BeatBatch",
    "BeatPipeline",
    "ClassifiedBeat",
    "ClassifiedBeats",
    "classify_batches",
    "classify_record",
    "prepare_many",
]
