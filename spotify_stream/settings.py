"""Every setting of spotify-stream, in one place.

Values come from the environment (``SPOTIFY_STREAM_<NAME>``) or a ``.env`` file in
the working directory; the defaults run the embedded local stack. No other module
reads the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SPOTIFY_STREAM_", env_file=".env", extra="ignore", frozen=True
    )

    broker: str = Field(
        "kafka://127.0.0.1:9092",
        description="Kafka bootstrap servers, comma-separated, with or without kafka://",
    )
    kafka_security: Literal["plaintext", "tls", "sasl_scram", "msk_iam"] = Field(
        "plaintext",
        description="How clients talk to Kafka: plaintext; tls (mutual with a client "
        "certificate); sasl_scram (SCRAM over TLS, MSK's port 9096); msk_iam (IAM over TLS, "
        "MSK's port 9098, credentials from the AWS chain)",
    )
    kafka_ca_file: Path | None = Field(
        None, description="CA bundle for the brokers' TLS certificates (unset: the system's)"
    )
    kafka_cert_file: Path | None = Field(None, description="Client certificate (mutual TLS)")
    kafka_key_file: Path | None = Field(None, description="Client certificate's key")
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = Field(
        "SCRAM-SHA-512", description="SCRAM variant of sasl_scram (MSK: SCRAM-SHA-512)"
    )
    kafka_username: str | None = Field(None, description="SCRAM user (or from the secret)")
    kafka_password: SecretStr | None = Field(
        None, description="SCRAM password (never logged; or from the secret)"
    )
    kafka_secret_arn: str | None = Field(
        None,
        description='AWS Secrets Manager secret holding {"username", "password"} for '
        "sasl_scram (MSK's AmazonMSK_* secrets)",
    )
    aws_region: str | None = Field(
        None, description="Region of MSK IAM tokens and the secret (unset: the AWS chain's)"
    )
    lake: str = Field("file://./lake", description="Lake root: file://DIR or s3://bucket/prefix")
    lake_format: Literal["hive", "iceberg"] = Field(
        "hive",
        description="How the lake holds each dataset: hive (Parquet objects in dt=/hr= "
        "folders, named by their Kafka offsets) or iceberg (Apache Iceberg tables in a "
        "SQLite catalog under <lake>/iceberg, their Kafka offsets in each snapshot; "
        "file:// lakes only for now)",
    )
    s3_endpoint: str | None = Field(None, description="Endpoint URL of an S3-compatible store")
    s3_sse: Literal["none", "AES256", "aws:kms"] = Field(
        "none", description="Server-side encryption of lake objects"
    )
    s3_sse_kms_key_id: str | None = Field(None, description="KMS key for s3_sse=aws:kms")
    s3_multipart_threshold: int = Field(
        64 << 20, ge=5 << 20, description="Objects at least this large go up in parts"
    )
    s3_part_size: int = Field(16 << 20, ge=5 << 20, description="Part size of multipart uploads")
    s3_max_attempts: int = Field(
        5, ge=1, description="Attempts per S3 call (botocore standard retries, jittered backoff)"
    )
    glue_database: str = Field(
        "spotify_stream", description="Glue database (Athena schema) of the lake's tables"
    )
    glue_endpoint: str | None = Field(None, description="Endpoint URL of Glue (moto, tests)")
    athena_workgroup: str = Field(
        "primary", description="Athena workgroup of query --engine athena"
    )
    athena_output: str | None = Field(
        None,
        description="s3:// location of Athena's query results (unset: the workgroup's own)",
    )
    athena_endpoint: str | None = Field(None, description="Endpoint URL of Athena (moto, tests)")
    athena_timeout: float = Field(600, gt=0, description="Seconds an Athena query may run")
    quicksight_endpoint: str | None = Field(
        None, description="Endpoint URL of QuickSight (moto, tests)"
    )
    dashboard_refresh: float = Field(
        30, gt=0, description="Seconds between runs of a dashboard chart's named query"
    )
    dashboard_live_refresh: float = Field(
        3, gt=0, description="Seconds between refreshes of the dashboard's live charts"
    )
    compact_file_rows: int = Field(
        4_000_000, ge=1, description="Rows per file that etl compact writes at most"
    )
    etl_settle: float = Field(
        3600,
        ge=0,
        description="Seconds after a day's end before etl may compact or aggregate it "
        "(the sink may rewrite its uncommitted last flushes until then)",
    )
    parquet_row_group_rows: int = Field(
        131_072,
        ge=1,
        description="Rows per Parquet row group (Athena reads row groups in parallel)",
    )
    store: str = Field("rocksdb://", description="Faust table store")
    data_dir: Path = Field(Path("./.spotify-stream"), description="Worker state directory")
    web_host: str = Field("127.0.0.1", description="Faust web bind address")
    web_port: int = Field(6066, description="Faust web port")
    partitions: int = Field(8, ge=1, description="Partitions of the topics the project creates")
    replication: int = Field(1, ge=1, description="Replication factor of created topics")
    flush_seconds: float = Field(60, gt=0, description="Sink window in seconds")
    lake_sink: bool = Field(
        True, description="Run the lake sink in this worker (off: a worker that only streams)"
    )
    sink_max_rows: int = Field(
        100_000, ge=1, description="Rows of one partition a sink buffers before it writes"
    )
    sink_max_bytes: int = Field(
        4 << 20, ge=1, description="Message bytes of one partition a sink buffers before it writes"
    )
    sink_max_memory: int = Field(
        256 << 20,
        ge=1,
        description="Message bytes the lake sink holds in all (buffers and unwritten flushes) "
        "before it pauses consumption, as while storage is down",
    )
    join_max_wait: float = Field(300, gt=0, description="Seconds a track waits for dimensions")

    app_id: str = Field(
        "spotify-stream", description="Faust app id: consumer group and table names"
    )
    tumbling_window: float = Field(3600, gt=0, description="Tumbling popularity window, seconds")
    hopping_window: float = Field(86400, gt=0, description="Hopping popularity window, seconds")
    hopping_step: float = Field(3600, gt=0, description="Hop of the hopping window, seconds")
    window_grace: float = Field(
        60,
        ge=0,
        description="Seconds of event time a window stays open after its end for late plays",
    )
    max_clock_skew: float = Field(
        300,
        ge=0,
        description="Seconds a play's event time may be ahead of its Kafka message timestamp; "
        "a play further ahead is dead-lettered (future_event_time)",
    )
    worker_batch: int = Field(
        2000, ge=1, description="Most messages an agent takes from Kafka per processing step"
    )
    cluster_k: int = Field(8, ge=2, le=100, description="Clusters of the online track model")
    cluster_batch: int = Field(
        500, ge=10, description="Feature rows per mini-batch of the cluster trainer"
    )
    cluster_warmup: int = Field(
        1000, ge=10, description="Feature rows the trainer waits for before its first model"
    )
    cluster_publish_seconds: float = Field(
        5, gt=0, description="Least seconds between published cluster model versions"
    )
    recent_plays: int = Field(
        200,
        ge=1,
        le=10_000,
        description="Distinct tracks kept per user for recommendations (the latest plays)",
    )
    dimension_cache: int = Field(
        200_000, ge=0, description="Decoded artists, and as many albums, kept in memory per worker"
    )
    state_write_buffer: int = Field(
        4 << 20,
        ge=64 << 10,
        description="Bytes of one RocksDB memtable, per table partition (two at most each)",
    )
    state_block_cache: int = Field(
        4 << 20, ge=0, description="Bytes of RocksDB block cache, per table partition"
    )

    producer_idempotence: Literal["auto", "on", "off"] = Field(
        "auto",
        description="auto: idempotent when the broker supports it (Kafka, MSK), "
        "plain otherwise (the embedded broker refuses InitProducerId)",
    )
    producer_linger_ms: int = Field(20, ge=0, description="Producer batching delay")
    producer_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "none", description="Compression of produced record batches"
    )
    producer_max_batch_bytes: int = Field(
        1 << 20, ge=1024, description="Largest record batch per partition (and largest message)"
    )
    input_batch_records: int = Field(
        1,
        ge=1,
        le=100_000,
        description="Records per message the producer writes to input topics: 1 is one record "
        "per message keyed by id (the default everywhere); more is the opt-in Batch form",
    )
    connect_timeout: float = Field(
        10, gt=0, description="Seconds to wait for Kafka before giving up with an error"
    )

    csv_max_field_chars: int = Field(
        1 << 20, gt=0, description="Longest CSV field accepted; longer ones are dead-lettered"
    )
    deadletter_max_raw_bytes: int = Field(
        64 << 10, gt=0, description="Raw row bytes kept in a dead-letter record"
    )

    @field_validator("broker")
    @classmethod
    def _broker_not_empty(cls, value: str) -> str:
        if not bootstrap_list(value):
            raise ValueError("needs at least one host:port")
        return value

    @property
    def bootstrap_servers(self) -> list[str]:
        return bootstrap_list(self.broker)

    def rocksdb_options(self) -> dict[str, int]:
        """Options of each RocksDB store of a worker (every table partition, the dimension
        store), in Faust's ``RocksDBOptions`` terms: what bounds their memory. Faust's
        own defaults (64 MiB memtables, three of them, and a 2 GiB block cache, per
        table partition) let a worker's memory grow with the plays it processed."""
        return {
            "write_buffer_size": self.state_write_buffer,
            "max_write_buffer_number": 2,
            "block_cache_size": self.state_block_cache,
        }


#: What a worker holds besides its stores, caches and the sink's buffers: the
#: interpreter and its libraries (Faust, aiokafka, pyarrow, polars, scikit-learn),
#: measured at 270 MiB once a 5,000-track catalog is enriched, with room to spare.
MEMORY_BASE = 400 << 20
#: Decoded artist or album kept in the dimension cache, as Python objects.
DIMENSION_BYTES = 1500


def memory_bound(settings: Settings) -> int:
    """The resident memory one worker holding every partition stays under, in bytes:
    ``MEMORY_BASE``, every RocksDB store at its limits, the dimension cache full, and
    the lake sink holding ``sink_max_memory`` (docs/stream.md, bench/memory.py)."""
    from spotify_stream import topics

    stores = len(topics.TABLES) * settings.partitions + 1  # + the dimension store
    rocksdb = settings.state_write_buffer * 2 + settings.state_block_cache
    sink = settings.sink_max_memory if settings.lake_sink else 0
    dimensions = 2 * settings.dimension_cache * DIMENSION_BYTES
    return MEMORY_BASE + stores * rocksdb + dimensions + sink


def bootstrap_list(broker: str) -> list[str]:
    """``kafka://a:9092,b:9092`` -> ``["a:9092", "b:9092"]``."""
    servers = []
    for part in broker.split(","):
        part = part.strip()
        if "://" in part:
            part = part.split("://", 1)[1]
        if part:
            servers.append(part)
    return servers


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
