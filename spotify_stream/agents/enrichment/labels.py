"""Cluster labels of enriched tracks: assigned with the newest model when a track's
features join or change, kept when it is re-emitted for another reason (so a
replay emits the same record); before the first model, tracks with all their
features wait for it (``Enricher.label`` labels them, in bulk, once it comes)."""

from __future__ import annotations

import numpy as np

from spotify_stream.agents.clustering import ModelHolder
from spotify_stream.agents.enrichment.assembly import Assembler
from spotify_stream.ml.clustering import VECTOR, unpack_vectors
from spotify_stream.models import codec_for


class Labels:
    def __init__(self, models: ModelHolder, parts: Assembler) -> None:
        self.models = models
        self.parts = parts
        self._enriched = codec_for("EnrichedTrack")

    def awaits_model(self, features: bytes | None) -> bool:
        """Whether a track with these features waits for the first model: one with all
        its features is labelled when emitted, so the lake gets one row for it, not an
        unlabelled one and then a labelled one."""
        if features is None or self.models.model is not None:
            return False
        return not np.isnan(unpack_vectors([features[: VECTOR.size]])).any()

    def assign(self, features: list[bytes | None]) -> list[bytes | None]:
        """The cluster parts of tracks joining for the first time (None: not assigned
        here), assigned in one step with the newest model."""
        model = self.models.model
        at = [i for i, f in enumerate(features) if f is not None]
        parts: list[bytes | None] = [None] * len(features)
        if model is None or not at:
            return parts
        vectors = unpack_vectors([features[i][: VECTOR.size] for i in at])  # type: ignore[index]
        complete = ~np.isnan(vectors).any(axis=1)
        labels, distances = model.assign(np.nan_to_num(vectors))  # NaN rows: not assigned
        # the parts as bytes: a prefix per cluster, then each distance's 8 bytes
        prefixes = [self.parts.cluster_part(c, model.version, 0.0)[:-8] for c in range(model.k)]
        packed = distances.astype("<f8").tobytes()
        for j, (i, ok, label) in enumerate(
            zip(at, complete.tolist(), labels.tolist(), strict=True)
        ):
            if ok:
                parts[i] = prefixes[label] + packed[8 * j : 8 * j + 8]
        return parts

    def of(self, current: bytes | None, features: bytes | None) -> tuple[bytes, bool]:
        """A track's cluster parts, and whether its features are new to the trainer.

        Assigned when the features join or change; a re-emit for another reason keeps
        what was emitted, so a replay after a crash emits the same record. Tracks
        emitted before the first model are the exception: ``Enricher.label`` retries them
        once a model is known, and they are labelled then.
        """
        if features is None:
            return self.parts.no_cluster, False
        if current is not None:
            emitted = self._enriched.decode(current)
            same = self.parts.features_of(features)["features_updated_at"]
            if emitted["features_updated_at"] == same:
                if emitted["model_version"] is None:  # emitted before the first model
                    (part,) = self.assign([features])
                    return part or self.parts.no_cluster, False
                part = self.parts.cluster_part(
                    emitted["cluster_id"], emitted["model_version"], emitted["cluster_distance"]
                )
                return part, False
        (part,) = self.assign([features])
        return part or self.parts.no_cluster, True
