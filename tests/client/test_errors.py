"""What the client raises when the appliance cannot be reached or something else answers: one
tree, each error with a stable code."""
from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading

import pytest

from sqlrs_client import ApiError, Client, SqlrsError, Unavailable


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class BareGateway(http.server.BaseHTTPRequestHandler):
    """A proxy in front of a stopped appliance: a bare 502 with an HTML body."""

    def do_GET(self) -> None:
        body = b"<html>bad gateway</html>"
        self.send_response(502, "Bad Gateway")
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def gateway_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BareGateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_appliance_nobody_listens_for_is_unavailable_naming_its_url():
    url = closed_port_url()
    with Client(url, "token") as client, pytest.raises(Unavailable) as error:
        client.health()
    assert error.value.code == "unavailable" and url in error.value.message


def test_a_bare_error_status_becomes_an_api_error_with_a_code_of_its_class(gateway_url):
    with Client(gateway_url, "token") as client, pytest.raises(ApiError) as error:
        client.instances()
    assert (error.value.status, error.value.code, error.value.message) == (502, "internal_error", "HTTP 502 Bad Gateway")
    assert isinstance(error.value, SqlrsError)


def test_the_token_comes_from_the_token_file_when_none_is_given(tmp_path, monkeypatch):
    (tmp_path / "token").write_text("s3cret\n")
    monkeypatch.delenv("SQLRS_TOKEN", raising=False)
    monkeypatch.setenv("SQLRS_TOKEN_FILE", str(tmp_path / "token"))
    with Client("http://127.0.0.1:1") as client:
        assert client.settings.token == "s3cret"


def test_importing_the_errors_loads_no_http_library():
    code = "import sys, sqlrs_client.errors; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_ca_certificate_with_a_plain_http_url_is_refused_before_any_token_is_sent(tmp_path):
    with pytest.raises(SqlrsError) as refused:
        Client("http://127.0.0.1:7433", "sqlrs_token", ca_cert=tmp_path / "ca.crt")
    assert refused.value.code == "invalid_argument" and "not https" in refused.value.message
