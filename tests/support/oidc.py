"""A local OIDC issuer for tests: real keys (generated per run), discovery and JWKS served over
HTTP on loopback, and real signed tokens. Nothing about it is faked in the appliance.

It also signs people in for a browser: the authorization code flow with PKCE (S256 only) for one
registered public client, as strict as a real issuer: an unregistered client or redirect URI,
a missing or wrong ``code_verifier``, or a code used twice is refused. Whoever reaches
``/authorize`` is signed in at once as ``person`` (the claims of the next token)."""
from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

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
    client_id: str = "sqlrs-console"
    redirect_uris: set[str] = field(default_factory=set)  # registered for client_id
    person: dict[str, Any] = field(default_factory=lambda: {"sub": "ada", "org": "acme", "role": "member"})
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)  # code -> what /authorize was asked
    token_requests: list[dict[str, str]] = field(default_factory=list)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    _released: threading.Event = field(default_factory=threading.Event)
    _counting: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        issuer = self
        self._released.set()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_OPTIONS(self) -> None:  # a CORS preflight, as an issuer serving browsers answers it
                self.send_response(204)
                self._cors()
                self.send_header("Access-Control-Allow-Methods", "GET, POST")
                self.send_header("Access-Control-Allow-Headers", "Content-Type, Accept")
                self.end_headers()

            def do_POST(self) -> None:
                if self.path != "/token":
                    self.send_error(404)
                    return
                form = {k: v[-1] for k, v in parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0))
                                                      .decode()).items()}
                issuer.token_requests.append(form)
                status, body = issuer.exchange(form)
                self._json(status, body)

            def do_GET(self) -> None:
                if self.path.startswith("/authorize?"):
                    status, where = issuer.authorize({k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()})
                    self.send_response(status)
                    if where:
                        self.send_header("Location", where)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks",
                            "authorization_endpoint": f"{issuer.url}/authorize", "token_endpoint": f"{issuer.url}/token",
                            "response_types_supported": ["code"], "code_challenge_methods_supported": ["S256"],
                            "grant_types_supported": ["authorization_code"],
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
                self._json(200, body)

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self._cors()
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _cors(self) -> None:
                self.send_header("Access-Control-Allow-Origin", "*")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def authorize(self, query: dict[str, str]) -> tuple[int, str | None]:
        """(status, Location): an error page (400) for a client or redirect URI it does not know,
        else back to the redirect URI with a code (or with ``error=`` for a bad request)."""
        self.authorize_requests.append(query)
        redirect = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or redirect not in self.redirect_uris:
            return 400, None  # never redirect to an unregistered URI
        back = {"state": query["state"]} if "state" in query else {}
        if query.get("response_type") != "code":
            return 302, f"{redirect}?{urlencode({'error': 'unsupported_response_type', **back})}"
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return 302, f"{redirect}?{urlencode({'error': 'invalid_request', 'error_description': 'PKCE S256 required', **back})}"
        code = secrets.token_urlsafe(24)
        self.codes[code] = {"challenge": query["code_challenge"], "redirect_uri": redirect,
                            "scope": query.get("scope", ""), "person": dict(self.person)}
        return 302, f"{redirect}?{urlencode({'code': code, **back})}"

    def exchange(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The token endpoint: a code (once), its redirect URI, and the verifier of its challenge."""
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        if form.get("client_id") != self.client_id:
            return 401, {"error": "invalid_client"}
        asked = self.codes.pop(form.get("code", ""), None)
        if asked is None or asked["redirect_uri"] != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant", "error_description": "unknown, used or mismatched code"}
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        if not 43 <= len(verifier) <= 128 or digest != asked["challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        return 200, {"access_token": self.token(**asked["person"]), "token_type": "Bearer", "expires_in": 300,
                     "scope": asked["scope"]}

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
