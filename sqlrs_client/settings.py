"""Where the appliance is and who is asking: arguments first, then ``SQLRS_URL``,
``SQLRS_TOKEN`` / ``SQLRS_TOKEN_FILE`` and ``SQLRS_ORG`` (the variables the CLI reads too)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlrs_client.errors import InvalidInput, Unavailable

DEFAULT_URL = "http://127.0.0.1:7433"
CONNECT_TIMEOUT_SECONDS = 5.0
REQUEST_TIMEOUT_SECONDS = 120.0  # uploads of large bundles take a while; events have no read timeout


def _version() -> str:
    from appliance import __version__
    return __version__


@dataclass(frozen=True)
class ClientSettings:
    url: str
    token: str | None
    org: str | None
    user_agent: str

    @classmethod
    def resolve(cls, url: str | None, token: str | None, org: str | None, user_agent: str | None,
                env: Any = None) -> ClientSettings:
        env = os.environ if env is None else env
        if token is None and env.get("SQLRS_TOKEN"):
            token = env["SQLRS_TOKEN"]
        if token is None and env.get("SQLRS_TOKEN_FILE"):
            try:
                token = Path(env["SQLRS_TOKEN_FILE"]).read_text().strip()
            except OSError as exc:
                raise InvalidInput(f"cannot read SQLRS_TOKEN_FILE: {exc.strerror}") from None
        return cls(url=(url or env.get("SQLRS_URL") or DEFAULT_URL).rstrip("/"), token=token or None,
                   org=org or env.get("SQLRS_ORG") or None,
                   user_agent=user_agent or f"sqlrs-client/{_version()}")

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": self.user_agent}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.org:
            headers["X-Sqlrs-Org"] = self.org
        return headers

    def httpx_options(self) -> dict[str, Any]:
        """Certificates are verified on https (the default store); a plain-HTTP appliance needs
        no store, and loading one costs about 40 ms. Redirects are not followed, so a request
        never leaves the scheme of ``url``."""
        import httpx
        return {"base_url": self.url, "headers": self.headers(), "verify": self.url.lower().startswith("https:"),
                "follow_redirects": False,
                "timeout": httpx.Timeout(REQUEST_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)}

    def stream_timeout(self) -> Any:
        import httpx
        return httpx.Timeout(None, connect=CONNECT_TIMEOUT_SECONDS)

    def unreachable(self, exc: Exception) -> Unavailable:
        import httpx
        if isinstance(exc, httpx.ConnectError):
            return Unavailable(f"cannot connect to the appliance at {self.url} (is it running? set SQLRS_URL)")
        if isinstance(exc, httpx.TimeoutException):
            return Unavailable(f"the appliance at {self.url} did not answer in time")
        return Unavailable(f"connection to the appliance at {self.url} failed: {type(exc).__name__}")
