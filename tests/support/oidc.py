"""A local OIDC issuer for tests: real keys (generated per run), discovery and JWKS served over
HTTP on loopback, and real signed tokens. Nothing about it is faked in the appliance."""
from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

AUDIENCE = "sqlrs-appliance"


@dataclass
class LocalIssuer:
    """Serves ``/.well-known/openid-configuration`` and ``/jwks`` and mints tokens."""

    rsa: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}))
    ec: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256", parameters={"kid": "ec-1"}))
    jwks_fetches: int = 0
    published_kids: set[str] = field(default_factory=lambda: {"rsa-1", "ec-1"})
    jwks_status: int = 200  # anything else: /jwks answers that status with no keys
    held: int = 0  # /jwks requests waiting right now in a hang (see hang())
    _released: threading.Event = field(default_factory=threading.Event)
    _counting: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        issuer = self
        self._released.set()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks",
                            "id_token_signing_alg_values_supported": ["RS256", "ES256"]}
                elif self.path == "/jwks":
                    with issuer._counting:
                        issuer.jwks_fetches += 1
                        hanging = not issuer._released.is_set()
                        issuer.held += hanging
                    if hanging:
                        issuer._released.wait()
                        with issuer._counting:
                            issuer.held -= 1
                    if issuer.jwks_status != 200:
                        self.send_error(issuer.jwks_status)
                        return
                    body = {"keys": [k.as_dict(private=False) for k in issuer.keys()
                                     if k.kid in issuer.published_kids]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def keys(self) -> list:
        return [self.rsa, self.ec]

    @contextlib.contextmanager
    def hang(self) -> Iterator[None]:
        """While inside, every /jwks request is held without an answer (a hanging issuer)."""
        self._released.clear()
        try:
            yield
        finally:
            self._released.set()

    def stop(self) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {"iss": self.url, "aud": AUDIENCE, "sub": f"user-{uuid.uuid4().hex[:8]}", "iat": now,
                "nbf": now, "exp": now + 300, "org": "acme", "role": "member"}
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def token(self, *, key=None, alg: str = "RS256", header: dict | None = None, **claims: Any) -> str:
        key = key or (self.ec if alg.startswith("ES") else self.rsa)
        return jwt.encode({"alg": alg, "kid": key.kid, **(header or {})}, self.claims(**claims), key)
