import os
import signal
import subprocess
import time

import pytest

from spotify_stream.embedded import EmbeddedBroker, free_port
from spotify_stream.embedded.broker import kafka_ready
from spotify_stream.errors import BrokerUnavailable
from tests.conftest import cli_command


def test_start_answers_kafka_and_stop_frees_the_port():
    broker = EmbeddedBroker()
    bootstrap = broker.start()
    assert bootstrap == f"127.0.0.1:{broker.port}"
    assert kafka_ready("127.0.0.1", broker.port)
    broker.stop()
    assert not broker.running
    assert not kafka_ready("127.0.0.1", broker.port)


def test_second_broker_on_a_taken_port_says_so(broker):
    with pytest.raises(BrokerUnavailable, match=f"port {broker.port} already has a Kafka broker"):
        EmbeddedBroker(port=broker.port).start()


def test_missing_binary_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CALF_TANSU_BIN", str(tmp_path / "no-such-tansu"))
    with pytest.raises(BrokerUnavailable, match="SPOTIFY_STREAM_BROKER"):
        EmbeddedBroker().start()


def test_broker_command_prints_bootstrap_and_stops_on_sigterm():
    port = free_port()
    proc = subprocess.Popen(
        [*cli_command(), "broker", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert f"broker ready on 127.0.0.1:{port}" in line
        assert kafka_ready("127.0.0.1", port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert "broker stopped" in proc.stdout.read()
        time.sleep(0.2)
        assert not kafka_ready("127.0.0.1", port)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
