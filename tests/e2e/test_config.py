"""Settings of `switchboard serve`: the TOML file, flags, origins, tokens."""

from __future__ import annotations

import subprocess

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from hubclient import Client
from httpcalls import http, metrics
from serverproc import BINARY, free_port


def refused_status(url: str, **options) -> int:
    """The HTTP status of a refused upgrade (fails if the upgrade succeeds)."""
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(url, proxy=None, open_timeout=5, **options).close()
    return refused.value.response.status_code


# ---- the config file and flags --------------------------------------------------------


def test_config_file_sets_port_and_limits(start_server, tmp_path, connect):
    port = free_port()
    config = tmp_path / "serve.toml"
    config.write_text(f'port = {port}\nmax_connections = 1\napi_key = "from-file"\n')
    server = start_server("--config", str(config), port=None)
    assert server.port == port
    connect(server.ws)
    assert refused_status(server.ws) == 503
    auth = {"Authorization": "Bearer from-file"}
    assert http("POST", server.http + "/api/publish", '{"broadcast":true,"event":"e"}', auth).status == 200


def test_flags_override_the_config_file(start_server, tmp_path, connect):
    config = tmp_path / "serve.toml"
    config.write_text('max_connections = 1\napi_key = "from-file"\n')
    server = start_server("--config", str(config), "--max-connections", "2", "--api-key", "from-flag")
    connect(server.ws)
    connect(server.ws)
    assert refused_status(server.ws) == 503
    body = '{"broadcast":true,"event":"e"}'
    assert http("POST", server.http + "/api/publish", body, {"Authorization": "Bearer from-file"}).status == 403
    assert http("POST", server.http + "/api/publish", body, {"Authorization": "Bearer from-flag"}).status == 200


def test_environment_variables_set_flags(start_server, tmp_path):
    port = free_port()
    config = tmp_path / "serve.toml"
    config.write_text("port = 1\n")
    server = start_server(
        "--config", str(config), port=None,
        env={"SWITCHBOARD_PORT": str(port), "SWITCHBOARD_API_KEY": "from-env"},
    )
    assert server.port == port
    body = '{"broadcast":true,"event":"e"}'
    assert http("POST", server.http + "/api/publish", body, {"X-API-Key": "from-env"}).status == 200
    assert http("POST", server.http + "/api/publish", body).status == 401


@pytest.mark.parametrize(
    "toml,complaint",
    [
        ("nonsense = 1\n", "nonsense"),
        ("port = \"not a number\"\n", "port"),
        ("queue_len = 0\n", "queue_len"),
        ("slow_consumer = \"sometimes\"\n", "slow_consumer"),
    ],
)
def test_bad_config_file_stops_the_server_with_a_reason(tmp_path, toml, complaint):
    config = tmp_path / "serve.toml"
    config.write_text(toml)
    result = subprocess.run(
        [str(BINARY), "serve", "--config", str(config), "--port", "0"],
        capture_output=True,
        timeout=10,
    )
    assert result.returncode != 0
    assert complaint in result.stderr.decode()


def test_missing_config_file_stops_the_server(tmp_path):
    result = subprocess.run(
        [str(BINARY), "serve", "--config", str(tmp_path / "absent.toml"), "--port", "0"],
        capture_output=True,
        timeout=10,
    )
    assert result.returncode != 0
    assert "absent.toml" in result.stderr.decode()


def test_port_in_use_stops_the_server(start_server):
    first = start_server()
    result = subprocess.run(
        [str(BINARY), "serve", "--host", "127.0.0.1", "--port", str(first.port)],
        capture_output=True,
        timeout=10,
    )
    assert result.returncode != 0
    assert "cannot listen" in result.stderr.decode()


# ---- origins ------------------------------------------------------------------------


@pytest.fixture
def guarded(start_server):
    return start_server("--allowed-origins", "http://good.example,http://also.example")


def test_other_origin_is_refused_with_403(guarded):
    assert refused_status(guarded.ws, origin="http://evil.example") == 403
    assert refused_status(guarded.echo, origin="http://evil.example") == 403


def test_allowed_origins_connect(guarded, connect):
    connect(guarded.ws, origin="http://good.example")
    connect(guarded.ws, origin="http://also.example")


def test_client_without_origin_connects(guarded, connect):
    """Only browsers send Origin; the check protects them, not scripts."""
    connect(guarded.ws)


def test_any_origin_connects_by_default(server, connect):
    connect(server.ws, origin="http://anywhere.example")


# ---- the WebSocket token --------------------------------------------------------------


@pytest.fixture
def tokened(start_server):
    return start_server("--ws-token", "t0ken")


def test_ws_without_token_is_401(tokened):
    assert refused_status(tokened.ws) == 401


def test_ws_with_a_wrong_token_is_403(tokened):
    assert refused_status(tokened.ws + "?token=wrong") == 403
    assert refused_status(tokened.ws, additional_headers={"Authorization": "Bearer wrong"}) == 403


def test_ws_with_the_token_connects(tokened):
    Client(tokened.ws + "?token=t0ken").close()
    Client(tokened.ws, headers={"Authorization": "Bearer t0ken"}).close()


def test_token_and_name_query_parameters_together(tokened):
    client = Client(tokened.ws + "?token=t0ken&name=alice")
    assert client.name == "alice"
    client.close()


def test_refused_upgrades_do_not_count_as_connections(tokened):
    for _ in range(3):
        refused_status(tokened.ws)
    assert metrics(tokened)["switchboard_connections_opened_total"] == 0
