"""One typed settings object, read from an optional TOML file and ``SQLRS_*`` variables.

Environment wins over the file, the file over the defaults. The object is built once by
the entry points and passed down; no module reads the environment by itself.
"""
from __future__ import annotations

import os
import socket
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from appliance.ids import HOST_ID_PATTERN, ORG_PATTERN


def _default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/sqlrs-appliance")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sqlrs-appliance"


class Settings(BaseSettings):
    # hide_input_in_errors: a validation error never echoes the input, which holds secrets (URLs, keys)
    model_config = SettingsConfigDict(env_prefix="SQLRS_", extra="forbid", validate_default=True,
                                      hide_input_in_errors=True)

    data_dir: Path = Field(default_factory=_default_data_dir,
                           description="Where the control DB, store, sources, logs and the admin token live.")
    listen: str = Field("127.0.0.1:7433", description="host:port the API listens on.")
    database_url: str | None = Field(None, description="Control DB: postgresql://… or sqlite:///path; default SQLite in data_dir.")
    database_allow_no_password: bool = Field(False, description=(
        "Accept a postgresql:// database_url without a password (the server authenticates the appliance "
        "some other way: client certificates, peer auth on a root-only socket). Tenants' code runs on the "
        "host and can reach the server: never with trust auth."))
    redis_url: str | None = Field(None, description="Redis for queues and locks; default: a private redis-server in data_dir "
                                                    "(unix socket in a 0700 directory, password in data_dir/redis.password).")
    redis_allow_no_password: bool = Field(False, description=(
        "Accept a TCP redis_url without a password. Whoever can write to the queues decides what the workers "
        "do, and tenants' code can connect to loopback: only for a Redis that is out of their reach otherwise."))
    default_org: str = Field("default", pattern=ORG_PATTERN,
                             description="Org that owns everything in the embedded default.")
    host_id: str = Field(default_factory=socket.gethostname, pattern=HOST_ID_PATTERN,
                         description="This host's name in the host registry; default the hostname. Every "
                                     "state copy, clone and instance on this host's store is recorded under it.")
    host_down_after_seconds: float = Field(30.0, gt=0, description="A host whose heartbeat is older than this "
                                                                   "gets no new work (placement skips it).")
    import_bytes_per_second: int = Field(100 * 1024**2, gt=0, description="Expected object-store import speed; "
                                         "placement imports an exported state instead of rebuilding it when "
                                         "its stream at this speed takes less time than the build did.")

    oidc_issuer: str | None = Field(None, description="OIDC issuer URL; when set, the API also accepts its access tokens "
                                                      "(validated against its discovery document and JWKS).")
    oidc_audience: str | None = Field(None, description="The `aud` every OIDC token must carry (required with oidc_issuer).")
    oidc_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"],
                                       description="Accepted signature algorithms (asymmetric only: never none or HS*).")
    oidc_leeway_seconds: int = Field(30, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat.")
    oidc_org_claim: str = Field("org", description="Claim naming the caller's org (used when oidc_groups_claim is unset).")
    oidc_role_claim: str = Field("role", description="Claim naming the caller's role: admin, member or viewer.")
    oidc_groups_claim: str | None = Field(None, description="Claim listing memberships as '<prefix><org>:<role>' "
                                                            "(e.g. groups); overrides oidc_org_claim/oidc_role_claim.")
    oidc_group_prefix: str = Field("sqlrs:", description="Prefix of the memberships in oidc_groups_claim; others are ignored.")
    oidc_subject_claim: str = Field("sub", description="Claim naming the principal (for audit).")
    oidc_jwks_cache_seconds: int = Field(600, gt=0, description="How long the issuer's JWKS is cached.")
    oidc_jwks_refetch_seconds: float = Field(30.0, ge=0, description="The issuer's JWKS is fetched at most this "
                                             "often (an unknown `kid`, aged or missing keys), whether the last try "
                                             "succeeded or failed: a rate limit against token spraying.")
    api_token_default_ttl_seconds: int = Field(90 * 86400, gt=0, description="Lifetime of an API token created without ttl_seconds.")
    api_token_max_ttl_seconds: int = Field(366 * 86400, gt=0, description="Longest lifetime an API token may be given.")

    rate_limit_per_principal: float = Field(50.0, gt=0, description="Requests per second one principal (token or "
                                                                   "OIDC subject) may sustain.")
    rate_limit_principal_burst: int = Field(200, gt=0, description="Requests one principal may make at once.")
    rate_limit_per_org: float = Field(200.0, gt=0, description="Requests per second one org's principals together may sustain.")
    rate_limit_org_burst: int = Field(1000, gt=0, description="Requests one org may make at once.")
    rate_limit_auth_failures_per_address: float = Field(5.0, gt=0, description=(
        "Failed authentications per second one client address (the connection's peer address; behind a "
        "reverse proxy, the proxy's) may sustain. Once its burst is spent, every request from that address "
        "answers 429 rate_limited, without its token being verified, until the bucket refills."))
    rate_limit_auth_failures_burst: int = Field(20, gt=0, description="Failed authentications one client "
                                                                      "address may make at once.")
    audit_auth_failures_window_seconds: float = Field(60.0, gt=0, description=(
        "Failed and refused authentications from one address are written to the audit log as at most one "
        "auth.failed row per this window, counting them since that address's previous row."))
    quota_max_running_jobs: int = Field(4, gt=0, description="Default per-org limit on prepare jobs running at once "
                                                             "(more wait in the queue).")
    quota_max_queued_jobs: int = Field(100, gt=0, description="Default per-org limit on jobs waiting in the queue.")
    quota_max_instances: int = Field(50, gt=0, description="Default per-org limit on live instances.")
    quota_max_state_bytes: int | None = Field(None, gt=0, description="Default per-org limit on bytes of states "
                                                                      "(none: only the cache's own cap).")
    priority_max_member: int = Field(10, ge=0, le=100, description="Highest job `priority` a member may set "
                                     "(priority orders an org's own queued jobs; orgs share workers fairly whatever it is).")
    priority_max_admin: int = Field(50, ge=0, le=100, description="Highest job `priority` an org admin may set "
                                                                  "(operator tokens may set up to 100).")
    quota_max_ttl_seconds: int | None = Field(None, gt=0, description="Default per-org TTL limit "
                                                                     "(none: instance_max_ttl_seconds).")

    storage_backend: Literal["auto", "zfs", "lvm", "btrfs", "copy"] = Field(
        "auto", description="Snapshot driver. auto: zfs when zfs_dataset exists, else btrfs when the store is on "
                            "btrfs, else a btrfs image, else copy.")
    zfs_dataset: str | None = Field(None, description="ZFS dataset holding the store (e.g. tank/sqlrs); its "
                                                      "mountpoint is the store directory.")
    lvm_thin_pool: str | None = Field(None, description="LVM thin pool as vg/pool for the lvm driver.")
    lvm_volume_bytes: int = Field(50 * 1024**3, gt=0, description="Virtual size of each LVM thin volume.")
    lvm_filesystem: Literal["ext4", "xfs"] = Field("xfs", description="Filesystem made on LVM thin volumes.")
    store_dir: Path | None = Field(None, description="Where states and clones live; default data_dir/store.")
    btrfs_image: Literal["auto", "off"] = Field(
        "auto", description="auto: when the store is not on btrfs and we may mount, loop-mount a btrfs image file there.")
    btrfs_image_bytes: int = Field(20 * 1024**3, gt=0, description="Size of the sparse btrfs image file.")

    artifacts_url: str | None = Field(None, description="Object store for artifacts and snapshot streams: "
                                                        "s3://bucket[/prefix] or file:///dir; default data_dir/objects.")
    artifact_retention_seconds: int = Field(30 * 86400, gt=0, description="How long job logs and reports are kept.")
    s3_endpoint: str | None = Field(None, description="S3/MinIO endpoint host:port for an s3:// artifacts_url.")
    s3_access_key: str | None = Field(None, description="S3 access key.")
    s3_secret_key: SecretStr | None = Field(None, description="S3 secret key (never logged).")
    s3_secure: bool = Field(True, description="Use TLS to reach the S3 endpoint.")
    s3_region: str | None = Field(None, description="S3 region, if the server needs one.")

    runtime: Literal["process", "docker", "nomad"] = Field("process", description="Instance runtime driver.")
    docker_image: str = Field("sqlrs/postgres:15", description="Postgres image for the docker and nomad runtimes "
                                                               "(built offline by scripts/build-postgres-image).")
    instance_memory_mb: int = Field(256, gt=0, description="Memory limit of one instance container.")
    instance_cpus: float = Field(1.0, gt=0, description="CPU limit of one instance container.")
    nomad_addr: str = Field("http://127.0.0.1:4646", description="Nomad HTTP API address for the nomad runtime.")
    nomad_token: SecretStr | None = Field(None, description="Nomad ACL token (never logged).")
    nomad_namespace: str = Field("default", description="Nomad namespace the appliance's jobs go to.")
    nomad_region: str | None = Field(None, description="Nomad region, if not the agent's own.")
    nomad_datacenters: list[str] = Field(default_factory=lambda: ["dc1"], description="Datacenters jobs may run in.")
    nomad_node_id: str | None = Field(None, description="Nomad node that holds this host's store (jobs are pinned to it).")
    pg_bin_dir: Path | None = Field(None, description="PostgreSQL binaries; default: newest /usr/lib/postgresql/*/bin.")
    liquibase_home: Path = Field(Path("/opt/sqlrs/liquibase/node_modules/liquibase/dist/liquibase"),
                                 description="A Liquibase distribution (the directory holding the `liquibase` "
                                             "launcher and its JDBC drivers); scripts/install-deps puts 4.28 here.")
    liquibase_java_opts: str = Field("-XX:TieredStopAtLevel=1 -XX:+UseSerialGC", description=(
        "JAVA_OPTS for every Liquibase run: a short-lived JVM starts faster on the client compiler alone."))
    java_home: Path | None = Field(None, description="The JRE Liquibase runs on; default: `java` on PATH.")
    liquibase_runner: Literal["host", "docker"] = Field("host", description=(
        "Where Liquibase runs: on the worker's host (liquibase_home, as liquibase_os_user), or in a "
        "container of liquibase_image on the host's Docker engine (docker and nomad runtimes)."))
    liquibase_image: str = Field("sqlrs/liquibase:4.28", description=(
        "Image for liquibase_runner = docker; scripts/build-liquibase-image builds it offline."))
    liquibase_os_user: str = Field("nobody", description=(
        "Unprivileged OS user Liquibase runs as (when the appliance runs as root): a changelog's "
        "sqlFile or loadData path can climb out of its source, and must find nothing readable there."))
    liquibase_one_jvm_per_run: bool = Field(True, description=(
        "Apply a run of uncached changesets with one Liquibase, forking the build volume at each changeset "
        "boundary (drivers that can fork a volume in use: btrfs); false: one Liquibase per changeset."))
    instance_scram_iterations: int = Field(4096, ge=4096, le=1_000_000, description=(
        "PBKDF2 iterations of the SCRAM verifier set on each instance. 4096 is both Postgres's default "
        "and the least the PostgreSQL JDBC driver accepts; raise it if a policy requires."))
    instance_os_user: str | None = Field(None, description="Unprivileged OS user that runs Postgres; default postgres when root, else the current user.")
    tenant_isolation: Literal["auto", "os", "none"] = Field("auto", description=(
        "How orgs are kept apart on the host. os: one OS user per org, and psql, Liquibase and "
        "process-runtime servers in a bubblewrap sandbox (needs root, useradd and bwrap). auto: os where "
        "the host allows it, else none with one org only. none: every org runs as instance_os_user "
        "(for a single team that accepts it: any org's SQL could then reach any other's data)."))
    tenant_uid_min: int = Field(200000, ge=1000, le=2**31 - 2, description="Lowest uid (and gid) given to an "
                                "org's OS user (os isolation); users are made on first use, per host.")
    tenant_uid_max: int = Field(299999, ge=1000, le=2**31 - 2, description="Highest uid given to an org's OS user.")
    instance_host: str = Field("127.0.0.1", description="Address instances listen on and DSNs name.")
    port_min: int = Field(6500, ge=1024, le=65535, description="First port of the instance port pool.")
    port_max: int = Field(6999, ge=1024, le=65535, description="Last port of the instance port pool.")
    instance_ttl_seconds: int = Field(3600, gt=0, description="Default instance TTL.")
    instance_max_ttl_seconds: int = Field(7 * 86400, gt=0, description="Upper bound for any TTL or extension.")

    cache_max_bytes: int | None = Field(None, gt=0, description="Cap on the bytes states may use; default: "
                                                               "the store's size less cache_reserve_bytes.")
    cache_high_watermark: float = Field(0.90, gt=0, le=1, description="Eviction starts above this share of the cap.")
    cache_low_watermark: float = Field(0.80, gt=0, le=1, description="Eviction stops at this share of the cap.")
    cache_reserve_bytes: int = Field(2 * 1024**3, ge=0, description="Free space always kept on the store.")
    cache_min_state_age_seconds: int = Field(600, ge=0, description="States younger than this are never evicted.")

    warm_pool_size: int = Field(0, ge=0, le=100, description="Running, unbound clones kept per hot state (0: off).")
    warm_pool_hot_window_seconds: int = Field(3600, gt=0, description="A state handed out as an instance within this window is hot.")
    warm_pool_max_states: int = Field(10, ge=0, description="At most this many hot states get a warm pool.")

    max_bundle_bytes: int = Field(64 * 1024**2, gt=0, description="Largest accepted source bundle (compressed and unpacked).")
    max_bundle_files: int = Field(10000, gt=0, description="Most files a source bundle may hold.")
    project_roots: list[Path] = Field(default_factory=list, description=(
        "Directories under which org admins may register server-side git repositories (POST /v1/projects). "
        "A repository's path is resolved (symlinks, ..) and must lie under one of them, at registration and "
        "again at every use. Empty (the default): server-side projects are off."))

    workers: int = Field(2, ge=1, le=64, description="RQ worker processes started by `sqlrs-appliance up`.")
    step_timeout_seconds: int = Field(3600, gt=0, description="Longest a single step may run.")
    job_heartbeat_seconds: float = Field(2.0, gt=0, description="How often a running job proves it is alive.")
    control_db_retry_seconds: float = Field(60.0, ge=0, description="How long a worker waits (with back-off) "
                                            "for an unreachable Control DB before giving up on what it was doing.")
    job_lost_after_seconds: float = Field(20.0, gt=0, description="A running job silent this long is failed by the reconciler.")
    reconcile_interval_seconds: float = Field(5.0, gt=0, description="How often the reaper/reconciler runs.")
    teardown_retry_min_seconds: float = Field(
        5.0, gt=0, description="An instance whose teardown failed stays `deleting`, with the error; the reconciler "
        "tries again after this long, doubling the wait after each failure up to `teardown_retry_max_seconds`. A "
        "teardown that has not finished this long after it began (its process died) is taken over too.")
    teardown_retry_max_seconds: float = Field(300.0, gt=0, description="The longest wait between two attempts "
                                              "to tear down a `deleting` instance.")
    orphan_grace_seconds: float = Field(60.0, ge=0, description="A snapshot or clone on disk that no Control-DB row "
                                        "knows is removed once it is this old (a state is committed a moment "
                                        "before its row is written).")
    job_retention_days: float = Field(30.0, ge=0, description="Finished jobs older than this are pruned with their "
                                      "tasks, events and ended instances' rows (0: kept for ever). Counters stay.")
    audit_retention_days: float = Field(365.0, ge=0, description="Audit-log rows older than this are pruned "
                                        "(0: kept for ever).")
    retention_batch_rows: int = Field(500, gt=0, description="Jobs (or audit rows) the reconciler prunes per "
                                      "transaction; at most 20 batches a pass.")
    object_sweep_interval_seconds: float = Field(300.0, gt=0, description="How often each host's reconciler lists "
                                                 "the object store for expired artifacts and orphaned uploads.")
    failpoints: list[Literal["clone", "snapshot", "instance-start"]] = Field(
        default_factory=list, description="Fault-injection tests only: workers pause at these points so a test "
                                          "can kill them there (armed one at a time by a file in data_dir/failpoints). Never set in production.")

    @field_validator("data_dir", "store_dir", "pg_bin_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @field_validator("project_roots", mode="after")
    @classmethod
    def _absolute_roots(cls, value: list[Path]) -> list[Path]:
        relative = [str(root) for root in value if not root.is_absolute()]
        if relative:
            raise ValueError(f"project_roots must be absolute paths; refused: {', '.join(relative)}")
        return value

    @field_validator("oidc_algorithms", mode="after")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        allowed = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
        refused = [alg for alg in value if alg not in allowed]
        if refused or not value:
            raise ValueError(f"oidc_algorithms must be asymmetric signature algorithms ({', '.join(sorted(allowed))}); "
                             f"refused: {', '.join(refused) or 'an empty list'}")
        return value

    @model_validator(mode="after")
    def _ranges_ordered(self) -> "Settings":
        if self.port_min > self.port_max:
            raise ValueError("port_min must not exceed port_max")
        if self.tenant_uid_min > self.tenant_uid_max:
            raise ValueError("tenant_uid_min must not exceed tenant_uid_max")
        if self.cache_low_watermark > self.cache_high_watermark:
            raise ValueError("cache_low_watermark must not exceed cache_high_watermark")
        if self.oidc_issuer and not self.oidc_audience:
            raise ValueError("oidc_audience is required when oidc_issuer is set")
        return self

    @model_validator(mode="after")
    def _services_need_passwords(self) -> Settings:
        """Tenants' code can reach every service on this host's network: ours need credentials."""
        from appliance.connections import insecure_database_url, insecure_redis_url
        if not self.database_allow_no_password and (problem := insecure_database_url(self.database_url)):
            raise ValueError(problem)
        if not self.redis_allow_no_password and (problem := insecure_redis_url(self.redis_url)):
            raise ValueError(problem)
        return self

    # Sources: init kwargs > env > secret files (SQLRS_<NAME>_FILE) > TOML file > defaults.
    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _SecretFileSource(settings_cls), _TomlFileSource(settings_cls))

    @property
    def store_path(self) -> Path:
        return self.store_dir or self.data_dir / "store"

    @property
    def control_db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'control.db'}"

    @property
    def objects_url(self) -> str:
        return self.artifacts_url or f"file://{self.data_dir / 'objects'}"

    @property
    def admin_token_file(self) -> Path:
        return self.data_dir / "admin.token"


SECRET_FILE_SETTINGS = ("database_url", "redis_url", "s3_access_key", "s3_secret_key", "nomad_token")


class _SecretFileSource(PydanticBaseSettingsSource):
    """``SQLRS_<NAME>_FILE=/path`` reads a secret setting from a file (systemd credentials,
    ``LoadCredential=`` + ``%d``; Vault agent templates), so it never sits in the environment of
    every process or in a unit file. A trailing newline is dropped."""

    def get_field_value(self, field, field_name):  # pragma: no cover - unused by __call__
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        from appliance.errors import InvalidArgument

        values: dict[str, Any] = {}
        for name in SECRET_FILE_SETTINGS:
            path = os.environ.get(f"SQLRS_{name.upper()}_FILE")
            if not path:
                continue
            try:
                with open(path, encoding="utf-8") as fh:
                    values[name] = fh.read().rstrip("\r\n")
            except OSError as exc:
                raise InvalidArgument(f"SQLRS_{name.upper()}_FILE: cannot read {path} ({exc.strerror})") from None
        return values


class _TomlFileSource(PydanticBaseSettingsSource):
    """Reads the file named by SQLRS_CONFIG (if any); unknown keys are an error via extra=forbid."""

    def get_field_value(self, field, field_name):  # pragma: no cover - unused by __call__
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        from appliance.errors import InvalidArgument

        path = os.environ.get("SQLRS_CONFIG")
        if not path:
            return {}
        try:
            with open(path, "rb") as fh:
                return tomllib.load(fh)
        except FileNotFoundError:
            raise InvalidArgument(f"configuration file {path} (SQLRS_CONFIG) does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidArgument(f"configuration file {path} is not valid TOML: {exc}") from None


def load_settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
