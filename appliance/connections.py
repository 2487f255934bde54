"""The appliance's own services — the Control DB and Redis — and the secrets that guard them.

Tenants run arbitrary code on the appliance's hosts, with host networking: a service on
loopback is within their reach, so every one of ours needs a credential. This module decides
whether a configured URL carries one, hides it whenever a URL is shown, and connects to the
private redis-server of the embedded default (a unix socket in a root-only directory, plus a
password kept in a 0600 file of the data dir).

It imports nothing of the appliance but errors: settings validation uses it.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:  # pragma: no cover
    from redis import Redis
    from redis.asyncio import Redis as AsyncRedis

log = logging.getLogger(__name__)

PRIVATE_REDIS_DIR = "redis"  # under data_dir, 0700: the socket, the config file, the log
REDIS_PASSWORD_FILE = "redis.password"  # under data_dir, 0600
REDACTED = "***"

DATABASE_WITHOUT_PASSWORD = "database_url carries no password"
REDIS_WITHOUT_PASSWORD = "redis_url carries no password"


# -- showing URLs ------------------------------------------------------------------------------
_USERINFO_PASSWORD = re.compile(r"(?P<head>^[A-Za-z][A-Za-z0-9+.-]*://[^/@:?#]*:)[^@/?#]*(?=@)")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:password|passwd|pass)=)[^&#]*", re.IGNORECASE)


def redact_url(url: str | None) -> str:
    """``url`` with its password (userinfo or a ``password=`` parameter) replaced by ``***``:
    what logs, errors and ``doctor`` may show."""
    if not url:
        return ""
    url = _USERINFO_PASSWORD.sub(lambda m: m["head"] + REDACTED, url)
    return _QUERY_PASSWORD.sub(lambda m: m["head"] + REDACTED, url)


def _password_in(url: str) -> bool:
    parts = urlsplit(url)
    if parts.password:
        return True
    return any(k.lower() == "password" and v for k, v in parse_qsl(parts.query, keep_blank_values=True))


# -- which URLs are acceptable -----------------------------------------------------------------
def insecure_database_url(url: str | None) -> str | None:
    """Why a Control DB URL is unsafe to use on a host that runs tenants' code, or None.

    SQLite lives in the data dir (0600). A PostgreSQL URL must carry a password: tenants can
    reach any server on this host's network, loopback included, and a ``trust`` line in
    pg_hba.conf would hand them every org's jobs, tokens and audit rows."""
    if not url or not url.startswith(("postgresql://", "postgres://")):
        return None
    if _password_in(url):
        return None
    return (f"{DATABASE_WITHOUT_PASSWORD} ({redact_url(url)}): tenants' code runs on this host and can "
            "reach the Control DB's server; give its role a password and put it in the URL (or in "
            "SQLRS_DATABASE_URL_FILE), or set database_allow_no_password = true if the server "
            "authenticates the appliance some other way")


def insecure_redis_url(url: str | None) -> str | None:
    """Why a Redis URL is unsafe, or None. A unix socket is guarded by its file permissions;
    a TCP Redis (``redis://``, ``rediss://``) answers anyone who can connect, so it needs a
    password (``requirepass`` or an ACL user): whoever may write to the queues decides what
    the workers run."""
    if not url or url.startswith("unix://"):
        return None
    if _password_in(url):
        return None
    return (f"{REDIS_WITHOUT_PASSWORD} ({redact_url(url)}): tenants' code runs on this host and can "
            "connect to it; set requirepass (or an ACL user) on the Redis server and put the password "
            "in the URL (redis://:PASSWORD@host:port/0, or SQLRS_REDIS_URL_FILE), use a unix socket "
            "only root can reach, or set redis_allow_no_password = true if the server is unreachable "
            "from this host's users some other way")


# -- the private redis-server's secret -------------------------------------------------------
def private_redis_dir(data_dir: Path) -> Path:
    return data_dir / PRIVATE_REDIS_DIR


def private_redis_socket(data_dir: Path) -> Path:
    return private_redis_dir(data_dir) / "redis.sock"


def redis_password_file(data_dir: Path) -> Path:
    return data_dir / REDIS_PASSWORD_FILE


def _private(path: Path) -> bool:
    info = path.stat()
    return info.st_uid == os.geteuid() and not stat.S_IMODE(info.st_mode) & 0o077


def ensure_redis_password(path: Path) -> str:
    """The private Redis's password, generated once into ``path`` (0600, owned by us). A file
    that others could read (or that someone else owns) no longer guards anything: it is
    replaced by a new secret."""
    if path.exists():
        if _private(path):
            return path.read_text().strip()
        log.warning("%s was readable by others or not ours: replacing it with a new password", path)
    password = secrets.token_hex(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    os.replace(staging, path)
    return password


def read_redis_password(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        from appliance.errors import InternalError
        raise InternalError(f"no Redis configured (SQLRS_REDIS_URL) and no private Redis in {path.parent} "
                            "(`sqlrs-appliance up` starts one)") from None


class RedisSettings(Protocol):
    """What choosing a Redis needs of ``Settings`` (which imports this module)."""
    redis_url: str | None
    data_dir: Path


def redis_client(settings: RedisSettings, **options: Any) -> Redis:
    """A client of the configured Redis, or of the data dir's private one (its socket and
    password file) — every process of the appliance connects through here."""
    from redis import Redis

    client: Redis = _connect(Redis, settings, options)
    return client


def async_redis_client(settings: RedisSettings, **options: Any) -> AsyncRedis:
    """The same Redis as :func:`redis_client`, for asyncio code (the API's event streams)."""
    from redis.asyncio import Redis as AsyncRedis

    client: AsyncRedis = _connect(AsyncRedis, settings, options)
    return client


def _connect(cls: Any, settings: RedisSettings, options: dict[str, Any]) -> Any:
    if settings.redis_url:
        return cls.from_url(settings.redis_url, **options)
    return cls(unix_socket_path=str(private_redis_socket(settings.data_dir)),
               password=read_redis_password(redis_password_file(settings.data_dir)), **options)
