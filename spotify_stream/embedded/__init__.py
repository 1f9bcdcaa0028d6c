"""The embedded local stack: a Kafka-compatible broker that installs with pip."""

from spotify_stream.embedded.broker import EmbeddedBroker, free_port

__all__ = ["EmbeddedBroker", "free_port"]
