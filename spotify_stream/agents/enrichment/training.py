"""What the enrichment hands the one cluster trainer: the feature vectors that
arrived or changed (to learn from), and the tracks whose features joined or
changed (for its profiles and the recommendation index)."""

from __future__ import annotations

from spotify_stream import topics
from spotify_stream.agents.pipeline import Pipeline
from spotify_stream.models.codec import encode_batch

#: Enriched tracks per Batch message to the cluster trainer, and feature vectors per
#: vectors message.
_TRAINING_BATCH = 1000
_VECTORS_BATCH = 10_000


class TrainerFeed:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.topic = pipeline.internal(topics.CLUSTER_TRAINING)
        self._training: list[bytes] = []  # emitted bodies, not yet sent
        self._vectors: list[bytes] = []  # packed features, not yet sent

    def vector(self, packed: bytes) -> None:
        self._vectors.append(packed)

    def track(self, body: bytes) -> None:
        self._training.append(body)

    async def send(self) -> None:
        """Hand the trainer the features that arrived or changed (to learn from) and the
        tracks whose features joined or changed (for its profiles and the index)."""
        vectors, self._vectors = self._vectors, []
        for start in range(0, len(vectors), _VECTORS_BATCH):
            await self.pipeline.send(
                self.topic,
                topics.TRAINING_VECTORS_KEY,
                b"".join(vectors[start : start + _VECTORS_BATCH]),
            )
        bodies, self._training = self._training, []
        for start in range(0, len(bodies), _TRAINING_BATCH):
            chunk = bodies[start : start + _TRAINING_BATCH]
            await self.pipeline.send(self.topic, None, encode_batch(chunk))
