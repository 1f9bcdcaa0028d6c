import pytest
from pydantic import ValidationError

from spotify_stream.settings import Settings, bootstrap_list


def test_defaults_run_the_local_stack(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.bootstrap_servers == ["127.0.0.1:9092"]
    assert settings.lake == "file://./lake"
    assert settings.web_host == "127.0.0.1"
    assert settings.store == "rocksdb://"
    assert settings.partitions == 8
    assert settings.producer_idempotence == "auto"


def test_environment_and_dotenv(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SPOTIFY_STREAM_PARTITIONS=3\nSPOTIFY_STREAM_LAKE=s3://b/p\n")
    monkeypatch.setenv("SPOTIFY_STREAM_PARTITIONS", "12")
    settings = Settings()
    assert settings.partitions == 12  # environment beats .env
    assert settings.lake == "s3://b/p"


def test_bootstrap_list():
    assert bootstrap_list("kafka://a:1, b:2,kafka://c:3") == ["a:1", "b:2", "c:3"]


def test_invalid_values_are_refused(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPOTIFY_STREAM_PARTITIONS", "0")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.delenv("SPOTIFY_STREAM_PARTITIONS")
    monkeypatch.setenv("SPOTIFY_STREAM_BROKER", " , ")
    with pytest.raises(ValidationError):
        Settings()
