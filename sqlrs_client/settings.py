"""Where the appliance is, how to trust it and who is asking: arguments first, then ``SQLRS_URL``,
``SQLRS_CA_CERT``, ``SQLRS_TOKEN`` / ``SQLRS_TOKEN_FILE`` and ``SQLRS_ORG`` (the variables the CLI
reads too)."""
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
    ca_cert: str | None = None  # PEM file of the CA to trust on https (the appliance's own `ca.crt`)

    @classmethod
    def resolve(cls, url: str | None, token: str | None, org: str | None, user_agent: str | None,
                env: Any = None, ca_cert: str | os.PathLike[str] | None = None) -> ClientSettings:
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
                   user_agent=user_agent or f"sqlrs-client/{_version()}",
                   ca_cert=str(ca_cert) if ca_cert else env.get("SQLRS_CA_CERT") or None)

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": self.user_agent}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.org:
            headers["X-Sqlrs-Org"] = self.org
        return headers

    def httpx_options(self) -> dict[str, Any]:
        """Certificates are verified on https: against ``ca_cert`` when given, else the default
        store. A plain-HTTP appliance needs no store, and loading one costs about 40 ms. Redirects
        are not followed, so a request never leaves the scheme of ``url``."""
        import httpx
        return {"base_url": self.url, "headers": self.headers(), "verify": self._verify(), "follow_redirects": False,
                "timeout": httpx.Timeout(REQUEST_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)}

    def _verify(self) -> Any:
        if not self.url.lower().startswith("https:"):
            if self.ca_cert is not None:  # someone expects TLS: never send the token in the clear instead
                raise InvalidInput(f"a CA certificate is set (--ca-cert, SQLRS_CA_CERT) but {self.url} is not "
                                   "https: use the appliance's https:// URL")
            return False
        if self.ca_cert is None:
            return True
        import ssl
        try:
            return ssl.create_default_context(cafile=self.ca_cert)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidInput(f"cannot load the CA certificate {self.ca_cert} (--ca-cert, SQLRS_CA_CERT): "
                               f"{getattr(exc, 'strerror', None) or exc}") from None

    def stream_timeout(self) -> Any:
        import httpx
        return httpx.Timeout(None, connect=CONNECT_TIMEOUT_SECONDS)

    def unreachable(self, exc: Exception) -> Unavailable:
        import httpx
        if isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return Unavailable(
                f"the appliance at {self.url} presented a certificate this client does not trust "
                f"({_verify_reason(exc)})",
                hint="pass the CA that signed it with --ca-cert FILE or SQLRS_CA_CERT (an appliance with "
                     "tls_self_signed: its data_dir/tls/ca.crt)")
        if isinstance(exc, httpx.ConnectError):
            return Unavailable(f"cannot connect to the appliance at {self.url} (is it running? set SQLRS_URL)")
        if isinstance(exc, httpx.TimeoutException):
            return Unavailable(f"the appliance at {self.url} did not answer in time")
        return Unavailable(f"connection to the appliance at {self.url} failed: {type(exc).__name__}")


def _verify_reason(exc: Exception) -> str:
    """OpenSSL's reason, e.g. ``self-signed certificate in certificate chain``."""
    text = str(exc)
    return text.split("certificate verify failed:", 1)[-1].split("(_ssl.c", 1)[0].strip(" )") or text
