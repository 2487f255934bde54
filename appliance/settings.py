"""One typed settings object, read from an optional TOML file and ``SQLRS_*`` variables.

Environment wins over the file, the file over the defaults. The object is built once by
the entry points and passed down; no module reads the environment by itself.
"""
from __future__ import annotations

import os
import re
import socket
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from appliance.ids import HOST_ID_PATTERN, ORG_PATTERN

TLS_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.:-]{0,251}[A-Za-z0-9])?")  # a host name, IPv4 or IPv6 address
ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")  # a bare web origin, nothing that could end a header


def _default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/sqlrs-appliance")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sqlrs-appliance"


class Settings(BaseSettings):
    # hide_input_in_errors: a validation error never echoes the input, which holds secrets (URLs, keys)
    model_config = SettingsConfigDict(env_prefix="SQLRS_", extra="forbid", validate_default=True,
                                      hide_input_in_errors=True)

    data_dir: Path = Field(default_factory=_default_data_dir, description=(
        "Control DB, store, sources, logs and the admin token."),
        json_schema_extra={"shown_default": (
            "`/var/lib/sqlrs-appliance` as root, else `$XDG_STATE_HOME/sqlrs-appliance`")})
    listen: str = Field("127.0.0.1:7433", description="host:port the API listens on.")
    tls_cert_file: Path | None = Field(None, description=(
        "PEM certificate (with its chain) the API serves HTTPS with; needs `tls_key_file`."),
        json_schema_extra={"shown_default": "none (plain HTTP, unless `tls_self_signed`)"})
    tls_key_file: Path | None = Field(None, description=(
        "PEM private key of `tls_cert_file` (unencrypted; keep it 0600)."))
    tls_self_signed: bool = Field(False, description=(
        "HTTPS without certificate files: the appliance makes its own CA once (`data_dir/tls/ca.crt`, its key "
        "0600) and with it a certificate for the hostname, its FQDN, localhost, the loopback addresses, the "
        "`listen` address and `tls_names` (renewed at start within 30 days of expiry, reissued when the names "
        "change). Clients trust `ca.crt`: `sqlrs --ca-cert`, `SQLRS_CA_CERT`."))
    tls_names: list[str] = Field(default_factory=list, description=(
        "More DNS names or addresses for the `tls_self_signed` certificate, JSON list (e.g. the name clients "
        "use through a DNS alias)."))
    access_log: bool = Field(True, description=(
        "One log line per API request (logger `sqlrs.access`): request id, org, route, status, error code, peer "
        "address and duration; separate fields in the JSON log format."))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description=(
        "Lowest level logged, by every process (`sqlrs-appliance --log-level` overrides it for one command)."))
    log_format: Literal["text", "json"] = Field("text", description=(
        "`text` for people; `json`: one JSON object a line, with `request_id`, `org`, `job_id`, `task_id`, `rq_job` "
        "and the access log's fields as keys. Every process logs to stderr: under systemd, the journal."))
    log_file_max_bytes: int = Field(50 * 1024**2, ge=64 * 1024, description=(
        "Under `sqlrs-appliance up`, a worker's log file (`data_dir/logs/worker-N.log`) is rotated before it "
        "grows past this."), json_schema_extra={"shown_default": "`52428800` (50 MiB)"})
    log_file_backups: int = Field(5, ge=0, le=100, description=(
        "Rotated worker log files kept (`worker-N.log.1` newest); older ones are deleted."))
    database_url: str | None = Field(None, description=(
        "Control DB: `postgresql://user:pass@host/db` or `sqlite:///path`. A `postgresql://` URL without a password "
        "is refused at start (see \"Credentials of the appliance's own services\")."),
        json_schema_extra={"shown_default": "SQLite in `data_dir/control.db`"})
    database_allow_no_password: bool = Field(False, description=(
        "Accept a `postgresql://` `database_url` without a password, for a server that authenticates the appliance "
        "otherwise (client certificates, `peer` on a socket only root can reach). Never with `trust`."))
    redis_url: str | None = Field(None, description=(
        "Redis for queues and locks only (no persistence needed). A TCP URL (`redis://`, `rediss://`) without a "
        "password is refused at start; a `unix://` socket is accepted without one (its permissions guard it)."),
        json_schema_extra={"shown_default": (
            "a private `redis-server`: no TCP port, a unix socket in `data_dir/redis` (0700), a password in "
            "`data_dir/redis.password` (0600)")})
    redis_allow_no_password: bool = Field(False, description=(
        "Accept a TCP `redis_url` without a password, for a Redis that this host's other users cannot reach by other "
        "means."))
    default_org: str = Field("default", pattern=ORG_PATTERN, description=(
        "Org that owns the admin token and everything it creates."))
    host_id: str = Field(default_factory=socket.gethostname, pattern=HOST_ID_PATTERN, description=(
        "This host's name in the host registry (letters, digits, `.`, `_`, `-`). Every state copy, clone and instance "
        "on this host's store is recorded under it; keep it stable across restarts."),
        json_schema_extra={"shown_default": "the hostname"})
    host_down_after_seconds: float = Field(30.0, gt=0, description=(
        "A host whose heartbeat (one per reconciler pass) is older than this gets no new work."))
    import_bytes_per_second: int = Field(100 * 1024**2, gt=0, description=(
        "Expected object-store import speed: a host imports another host's exported state instead of rebuilding it "
        "when the stream at this speed (plus 0.5 s per state) is estimated faster than the recorded build time."),
        json_schema_extra={"shown_default": "`104857600` (100 MiB/s)"})

    oidc_issuer: str | None = Field(None, description=(
        "Issuer URL; its `/.well-known/openid-configuration` must name the same issuer."),
        json_schema_extra={"shown_default": "none (OIDC off)"})
    oidc_audience: str | None = Field(None, description="The `aud` every token must carry.",
        json_schema_extra={"shown_default": "none (required with an issuer)"})
    oidc_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"], description=(
        "Accepted signature algorithms, JSON list; asymmetric only (RS*, PS*, ES*, EdDSA) — `none` and HS* are "
        "refused at start."))
    oidc_leeway_seconds: int = Field(30, ge=0, le=300, description=(
        "Clock skew allowed on `exp`/`nbf`/`iat` (0–300)."))
    oidc_org_claim: str = Field("org", description=(
        "Claim naming the caller's org (when `oidc_groups_claim` is unset)."))
    oidc_role_claim: str = Field("role", description=(
        "Claim naming the caller's role: `admin`, `member` or `viewer`."))
    oidc_groups_claim: str | None = Field(None, description=(
        "Claim listing memberships `<prefix><org>:<role>` (e.g. `groups`); overrides the two above."))
    oidc_group_prefix: str = Field("sqlrs:", description="Prefix of those memberships; other groups are ignored.")
    oidc_client_id: str | None = Field(None, description=(
        "The web console's OIDC client (public: authorization code with PKCE, no secret); its redirect URI is "
        "`<the appliance's URL>/ui/`. Unset: the console signs in with pasted API tokens only."),
        json_schema_extra={"shown_default": "none (console OIDC sign-in off)"})
    oidc_scopes: str = Field("openid profile", description="Scopes the console asks the issuer for.")
    oidc_connect_origins: list[str] = Field(default_factory=list, description=(
        "More origins the console's browser may call during sign-in, JSON list: the token endpoint's, when it is "
        "not on the issuer's origin (e.g. `[\"https://oauth2.googleapis.com\"]`)."))
    oidc_subject_claim: str = Field("sub", description="Claim naming the principal (what the audit log records).")
    oidc_jwks_cache_seconds: int = Field(600, gt=0, description="How long the issuer's JWKS is cached.")
    oidc_jwks_refetch_seconds: float = Field(30.0, ge=0, description=(
        "The issuer is asked for its keys (an unknown `kid`, aged or missing keys) at most this often, whether the "
        "last try succeeded or failed; meanwhile unknown `kid`s answer 401 at once."))
    api_token_default_ttl_seconds: int = Field(90 * 86400, gt=0, description=(
        "Lifetime of a robot token created without `ttl_seconds`."),
        json_schema_extra={"shown_default": "`7776000` (90 days)"})
    api_token_max_ttl_seconds: int = Field(366 * 86400, gt=0, description=(
        "Longest lifetime a robot token may be given."),
        json_schema_extra={"shown_default": "`31622400` (366 days)"})

    rate_limit_per_principal: float = Field(50.0, gt=0, description=(
        "Requests per second one principal (token or OIDC subject) may sustain; a token bucket in Redis shared by "
        "every API process."))
    rate_limit_principal_burst: int = Field(200, gt=0, description="Requests one principal may make at once.")
    rate_limit_per_org: float = Field(200.0, gt=0, description=(
        "Requests per second one org's principals may sustain together."))
    rate_limit_org_burst: int = Field(1000, gt=0, description="Requests one org may make at once.")
    rate_limit_auth_failures_per_address: float = Field(5.0, gt=0, description=(
        "Failed authentications (401) per second one client address may sustain. The address is the connection's peer "
        "address: behind a reverse proxy it is the proxy's, for every client behind it (no `X-Forwarded-For` is "
        "trusted), so size the limit for that or let the proxy limit by client. Checked before any token is verified: "
        "once the burst is spent, *every* request from that address, good token or not, answers 429 `rate_limited` "
        "(`details.scope: address`, `Retry-After`) until the bucket refills; successful authentications take nothing "
        "from it."))
    rate_limit_auth_failures_burst: int = Field(20, gt=0, description=(
        "Failed authentications one client address may make at once."))
    audit_auth_failures_window_seconds: float = Field(60.0, gt=0, description=(
        "Failed and refused authentications from one address make at most one `auth.failed` audit row per window: the "
        "first one of a window writes a row counting them since that address's previous row (`details: {reason, path, "
        "failed, refused}`), so the counts of a burst appear with the address's next failure after its window."))
    quota_max_running_jobs: int = Field(4, gt=0, description=(
        "Default per-org limit on prepare jobs running at once; more wait in the queue (`PUT /v1/orgs/{org}/quota` "
        "overrides per org)."))
    quota_max_queued_jobs: int = Field(100, gt=0, description=(
        "Default per-org limit on jobs waiting in the queue (admission answers 429 beyond it)."))
    quota_max_instances: int = Field(50, gt=0, description=(
        "Default per-org limit on live instances (warm-pool clones count until bound: never)."))
    quota_max_state_bytes: int | None = Field(None, gt=0, description=(
        "Default per-org limit on bytes of states (every host's copies)."))
    priority_max_member: int = Field(10, ge=0, le=100, description=(
        "Highest job `priority` a member may set (403 `priority_not_allowed` above it). Priority orders an org's own "
        "queued jobs; orgs share the workers fairly whatever it is."))
    priority_max_admin: int = Field(50, ge=0, le=100, description=(
        "Highest job `priority` an org admin may set; operator tokens may set up to 100."))
    quota_max_ttl_seconds: int | None = Field(None, gt=0, description="Default per-org TTL limit (403 beyond it).",
        json_schema_extra={"shown_default": "none (`instance_max_ttl_seconds`)"})

    storage_backend: Literal["auto", "zfs", "lvm", "btrfs", "copy"] = Field("auto", description=(
        "`auto`, `zfs`, `lvm`, `btrfs` or `copy`; see \"Storage\" below."))
    zfs_dataset: str | None = Field(None, description=(
        "ZFS dataset holding the store (e.g. `tank/sqlrs`); its mountpoint is the store directory."))
    lvm_thin_pool: str | None = Field(None, description="LVM thin pool (`vg/pool`) for the `lvm` driver.")
    lvm_volume_bytes: int = Field(50 * 1024**3, gt=0, description="Virtual size of each thin volume.",
        json_schema_extra={"shown_default": "`53687091200` (50 GiB, thin)"})
    lvm_filesystem: Literal["ext4", "xfs"] = Field("xfs", description=(
        "Filesystem made on thin volumes (`ext4` or `xfs`)."))
    store_dir: Path | None = Field(None, description="Where states and clones live.",
        json_schema_extra={"shown_default": "`data_dir/store`"})
    btrfs_image: Literal["auto", "off"] = Field("auto", description=(
        "`auto`: when the store is not on btrfs and the appliance may mount (root), format and loop-mount a sparse "
        "btrfs image at the store; `off`: never."))
    btrfs_image_bytes: int = Field(20 * 1024**3, gt=0, description="Size of that image file.",
        json_schema_extra={"shown_default": "`21474836480` (20 GiB, sparse)"})

    artifacts_url: str | None = Field(None, description=(
        "Object store for job artifacts and snapshot streams: `s3://bucket[/prefix]` (MinIO or any S3) or "
        "`file:///dir`. It belongs to one installation: `up` and `api` claim it with a marker object "
        "(`.sqlrs-installation.json` at the prefix's root, naming the installation id kept in the Control DB) and "
        "refuse to start (`object_store_not_ours`) on one another installation claimed, so installations sharing a "
        "bucket each need their own prefix."),
        json_schema_extra={"shown_default": "`file://<data_dir>/objects`"})
    artifact_retention_seconds: int = Field(30 * 86400, gt=0, description=(
        "How long each job's `report.json` and step logs are kept; the reconciler deletes them after that."),
        json_schema_extra={"shown_default": "`2592000` (30 days)"})
    s3_endpoint: str | None = Field(None, description="`host:port` of the S3/MinIO server.")
    s3_access_key: str | None = Field(None, description="S3 access key.")
    s3_secret_key: SecretStr | None = Field(None, description="S3 secret key; never logged or shown.")
    s3_secure: bool = Field(True, description="TLS to the S3 endpoint.")
    s3_region: str | None = Field(None, description="S3 region, where the server wants one.")
    signing_key_file: Path | None = Field(None, description=(
        "The installation's ed25519 signing key (PEM, mode 0600), which signs every export manifest. Made on the "
        "first export when missing, with its public key beside it (`<file>.pub`, base64 of the raw key). Every host "
        "of one installation must sign with the same key: copy the file to each host (or point this setting at "
        "the same key on each)."),
        json_schema_extra={"shown_default": "`<data_dir>/signing.key`"})
    trusted_keys: list[str] = Field(default_factory=list, description=(
        "Public keys (base64 of the raw 32-byte ed25519 key, as in another installation's `signing.key.pub`) "
        "whose signed manifests this installation imports. Its own key is always trusted. A JSON list in the "
        "environment (`SQLRS_TRUSTED_KEYS='[\"…\"]'`)."))
    allow_unsigned_imports: bool = Field(False, description=(
        "Import manifests that carry no signature (format 1, written before manifests were signed). Off: such a "
        "state is refused with `unsigned_manifest`; export it again on its installation to sign it."))
    transfer_progress_seconds: float = Field(1.0, gt=0, description=(
        "How often a running export or import records its progress (and that it is alive)."))

    runtime: Literal["process", "docker", "nomad"] = Field("process", description=(
        "Instance runtime driver: `process` (`pg_ctl` on the host), `docker` (one container per instance) or `nomad` "
        "(one Nomad batch job per instance)."))
    docker_image: str = Field("sqlrs/postgres:15", description=(
        "Postgres image for the docker and nomad runtimes, built offline by `scripts/build-postgres-image`."))
    instance_memory_mb: int = Field(256, gt=0, description=(
        "Memory limit of one instance container (docker, nomad); an org's quota may set its own (`PUT "
        "/v1/orgs/{org}/quota`). The process runtime cannot enforce it."))
    instance_cpus: float = Field(1.0, gt=0, description="CPU limit of one instance container, likewise.")
    nomad_addr: str = Field("http://127.0.0.1:4646", description="Nomad HTTP API for the nomad runtime.")
    nomad_token: SecretStr | None = Field(None, description="Nomad ACL token; never logged.")
    nomad_namespace: str = Field("default", description="Namespace of the appliance's Nomad jobs.")
    nomad_region: str | None = Field(None, description="Nomad region.",
        json_schema_extra={"shown_default": "the agent's"})
    nomad_datacenters: list[str] = Field(default_factory=lambda: ["dc1"], description=(
        "Datacenters the jobs may run in (JSON list in the environment)."))
    nomad_node_id: str | None = Field(None, description=(
        "The Nomad node that holds this host's store; every job is pinned to it."))
    pg_bin_dir: Path | None = Field(None, description="PostgreSQL binaries for the process runtime.",
        json_schema_extra={"shown_default": "newest `/usr/lib/postgresql/*/bin`"})
    liquibase_home: Path = Field(Path("/opt/sqlrs/liquibase/node_modules/liquibase/dist/liquibase"), description=(
        "A Liquibase distribution: the directory with the `liquibase` launcher and its JDBC drivers. "
        "`scripts/install-deps` installs 4.28 there (the npm package `liquibase`, which bundles the PostgreSQL "
        "driver); an air-gapped site points this at its own copy. The JVM is started on Liquibase's command line "
        "class with the jars of `internal/lib` (other databases' drivers and the commercial extension left out) "
        "and any extension jars in `lib`; a distribution laid out otherwise runs through its launcher. Each run "
        "maps a class-data-sharing archive the appliance makes once under `<data_dir>/liquibase`."))
    liquibase_java_opts: str = Field("-XX:TieredStopAtLevel=1 -XX:+UseSerialGC", description=(
        "Options of every Liquibase JVM (and `JAVA_OPTS` of a launcher); a short-lived JVM starts faster on the "
        "client compiler alone."))
    java_home: Path | None = Field(None, description=(
        "The JRE Liquibase runs on (Debian: `openjdk-17-jre-headless`)."),
        json_schema_extra={"shown_default": "`java` on `PATH`"})
    liquibase_runner: Literal["host", "docker"] = Field("host", description=(
        "Where Liquibase runs: `host` (the distribution at `liquibase_home`, as `liquibase_os_user`) or `docker` (a "
        "container of `liquibase_image` on the host's Docker engine, for workers of the docker and nomad runtimes: it "
        "sees the job's source read-only and nothing else of the host, shares the host network to reach the build "
        "cluster on loopback, runs as the org's OS user (`nobody` without isolation) with no capabilities)."))
    liquibase_image: str = Field("sqlrs/liquibase:4.28", description=(
        "The image for `liquibase_runner = docker`; `scripts/build-liquibase-image` builds it offline (a JRE from the "
        "host's apt sources plus the Liquibase distribution) and records its `LIQUIBASE_VERSION`, which states are "
        "keyed by."))
    liquibase_os_user: str = Field("nobody", description=(
        "Unprivileged OS user Liquibase runs as when the appliance runs as root without tenant isolation (with `os` "
        "isolation it runs as the org's own user, in a sandbox that shows only the job's source, Liquibase and the "
        "JRE). A changelog's `sqlFile`/`loadData` path may climb out of its source (`../../…`); as this user it finds "
        "nothing there it may read but world-readable files: not the appliance's secrets, not any org's databases. "
        "Liquibase never reads a `liquibase.properties` from the source (it could name a classpath and a driver, i.e. "
        "a jar to run)."))
    liquibase_one_jvm_per_run: bool = Field(True, description=(
        "Apply a run of uncached changesets with one Liquibase instead of one per changeset (a JVM start is ~1.6 s). "
        "Each changeset still gets its own state: the appliance holds Liquibase at each changeset's "
        "`databasechangelog` insert for an instant and forks the build volume there; the fork becomes the state in "
        "the background. Used where the storage driver can fork a volume in use (btrfs); elsewhere, and with `false`, "
        "one `update-count --count=1` per changeset."))
    instance_scram_iterations: int = Field(4096, ge=4096, le=1_000_000, description=(
        "PBKDF2 iterations of the SCRAM-SHA-256 verifier set on each instance. 4096 is Postgres's default and the "
        "least the PostgreSQL JDBC driver accepts (it refuses to log in below that), so it is also the minimum here; "
        "raise it if a policy requires. Each bind pays for it once on the server (`ALTER ROLE … PASSWORD` re-derives "
        "the key, ~3 ms) and each client connect once."))
    instance_os_user: str | None = Field(None, description=(
        "Unprivileged user that runs Postgres and psql without tenant isolation (with `os` isolation each org has its "
        "own)."),
        json_schema_extra={"shown_default": "`postgres` when root, else the current user"})
    tenant_isolation: Literal["auto", "os", "none"] = Field("auto", description=(
        "How orgs are kept apart on the host ([operations.md](operations.md#tenant-isolation-threat-model)). `os`: "
        "one OS user per org, and psql, Liquibase and process-runtime servers in a bubblewrap sandbox (needs root, "
        "`useradd` and `bwrap`; refuses to start without them). `auto`: `os` where the host allows it, else no "
        "isolation and **one org only**. `none`: every org runs as `instance_os_user`, for a single team that accepts "
        "that any org's SQL could reach any other's data."))
    tenant_uid_min: int = Field(200000, ge=1000, le=2**31 - 2, description=(
        "Lowest uid (and gid) given to an org's OS user; users are made on first use, on each host."))
    tenant_uid_max: int = Field(299999, ge=1000, le=2**31 - 2, description="Highest uid given to an org's OS user.")
    instance_host: str = Field("127.0.0.1", description="Address instances listen on and DSNs name.")
    instance_tls: bool = Field(False, description=(
        "Instances serve TLS too: each gets, at every start, its own certificate for `instance_host` signed by "
        "the host's instances CA (`data_dir/tls/instances-ca.crt`; never the API's CA, since an instance's owner "
        "can read its key), and DSNs say `sslmode=require` (clients may verify with that CA: "
        "`sslmode=verify-full&sslrootcert=instances-ca.crt`). Applies to instances started after it is set."))
    port_min: int = Field(6500, ge=1024, le=65535, description="First port of the instance port pool.")
    port_max: int = Field(6999, ge=1024, le=65535, description="Last port of the instance port pool.")
    instance_ttl_seconds: int = Field(3600, gt=0, description="Lifetime of an instance when the request names none.")
    instance_max_ttl_seconds: int = Field(7 * 86400, gt=0, description="Upper bound for any TTL or extension.")

    cache_max_bytes: int | None = Field(None, gt=0, description="Cap on the bytes all states may use on this host.",
        json_schema_extra={"shown_default": "the store's size less `cache_reserve_bytes`"})
    cache_high_watermark: float = Field(0.90, gt=0, le=1, description=(
        "Eviction starts when usage passes this share of the cap (or free space falls below the reserve)."))
    cache_low_watermark: float = Field(0.80, gt=0, le=1, description="Eviction stops at this share of the cap.")
    cache_reserve_bytes: int = Field(2 * 1024**3, ge=0, description="Free space always kept on the store.")
    cache_min_state_age_seconds: int = Field(600, ge=0, description=(
        "States younger than this (by creation and last use) are never evicted."))

    warm_pool_size: int = Field(0, ge=0, le=100, description=(
        "Running, unbound clones kept per hot state; a cache-hit prepare binds one (fresh password) instead of "
        "cloning and starting Postgres. A full hit with a pooled clone on the admitting host is answered by the POST "
        "itself (`status: succeeded`, the DSN in `result`). The API keeps one superuser connection open to each "
        "pooled clone (one idle backend each) so that a bind costs only its `ALTER ROLE`."),
        json_schema_extra={"shown_default": "`0` (off)"})
    warm_pool_hot_window_seconds: int = Field(3600, gt=0, description=(
        "A state that prepares handed out as instances within this window is hot."))
    warm_pool_max_states: int = Field(10, ge=0, description=(
        "At most this many hot states (most demanded first) get a pool."))

    max_bundle_bytes: int = Field(64 * 1024**2, gt=0, description=(
        "Largest source bundle, compressed and unpacked (larger: 413)."))
    max_bundle_files: int = Field(10000, gt=0, description="Most entries a source bundle may hold.")
    project_roots: list[Path] = Field(default_factory=list, description=(
        "Directories (absolute, JSON list) under which org admins may register server-side git repositories with "
        "`POST /v1/projects`. A repository path is resolved first (symlinks, `..`) and must then lie under one of "
        "them, and so must its git directory and any object alternates; this is checked at registration and again at "
        "every prepare that uses the project, so a repository swapped for a symlink later is refused. Empty: `POST "
        "/v1/projects` answers 403 `permission_denied` (`details.reason: projects_disabled`); uploaded bundles work "
        "as always."),
        json_schema_extra={"shown_default": "`[]` (server-side projects off)"})

    workers: int = Field(2, ge=1, le=64, description="RQ worker processes `sqlrs-appliance up` keeps alive.")
    step_timeout_seconds: int = Field(3600, gt=0, description=(
        "Longest a single step may run; past it the step is stopped and the job fails with `step_failed`, "
        "`details.reason: step_timeout`."))
    job_heartbeat_seconds: float = Field(2.0, gt=0, description="How often a running job records that it is alive.")
    control_db_retry_seconds: float = Field(60.0, ge=0, description=(
        "How long a worker waits, probing every 0.5 s, 1 s, then 2 s, for an unreachable Control DB before giving up "
        "on what it was doing: every statement of a job in flight waits (outside a transaction), so a job rides out a "
        "Control-DB restart. After an outage the reconciler judges no job lost until the Control DB has been back for "
        "`job_lost_after_seconds`. The API does not wait: it answers 503 `control_db_unavailable`."))
    job_lost_after_seconds: float = Field(20.0, gt=0, description=(
        "A running job silent this long is failed by the reconciler and its clone removed."))
    reconcile_interval_seconds: float = Field(5.0, gt=0, description="How often the reaper/reconciler runs.")
    teardown_retry_min_seconds: float = Field(5.0, gt=0, description=(
        "An instance whose teardown failed (its server would not stop, its clone could not be removed) stays "
        "`deleting`, with the error in `sqlrs ls` and its API entry (`teardown_error`, `teardown_attempts`, "
        "`teardown_retry_at`); it keeps its port and its state until it is gone. The reconciler tries again after "
        "this long, doubling the wait after each failure up to `teardown_retry_max_seconds`. A teardown still "
        "unfinished this long after it began (the process doing it died) is taken over by the reconciler too."))
    teardown_retry_max_seconds: float = Field(300.0, gt=0, description=(
        "The longest wait between two attempts to tear down a `deleting` instance."))
    orphan_grace_seconds: float = Field(60.0, ge=0, description=(
        "A snapshot, clone or run dir that no Control-DB row knows is removed by the reconciler once it is this old "
        "(a state is committed to disk a moment before its row is written). Also how long a job-less instance may "
        "stay `starting`."))
    job_retention_days: float = Field(30.0, ge=0, description=(
        "Jobs that ended (`succeeded`, `failed`, `cancelled`) longer ago than this are pruned by the reconciler, with "
        "their tasks, events and the rows of their ended (`expired`, `failed`) instances. A job that still has an "
        "instance not yet ended, or a running task, is never pruned. `0`: kept for ever. Counters on `/metrics` are "
        "not lowered by pruning."))
    audit_retention_days: float = Field(365.0, ge=0, description=(
        "Audit-log rows older than this are pruned by the reconciler. `0`: kept for ever."))
    retention_batch_rows: int = Field(500, gt=0, description=(
        "How many jobs (or audit rows) the reconciler prunes in one transaction; it runs at most 20 such batches a "
        "pass, so a large backlog is worked off over several passes without holding the Control DB."))
    object_sweep_interval_seconds: float = Field(300.0, gt=0, description=(
        "How often each host's reconciler lists the object store to delete expired artifacts and uploads no "
        "Control-DB row knows (older than `orphan_grace_seconds`)."))
    failpoints: list[Literal["clone", "snapshot", "instance-start"]] = Field(default_factory=list, description=(
        "Fault-injection tests only (`[\"clone\", \"snapshot\", \"instance-start\"]`): a worker reaching an armed "
        "point (a file `data_dir/failpoints/<name>.armed`) pauses there so the test can kill it. Never set in "
        "production."))

    @field_validator("data_dir", "store_dir", "pg_bin_dir", "signing_key_file", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @field_validator("trusted_keys", mode="after")
    @classmethod
    def _raw_ed25519_keys(cls, value: list[str]) -> list[str]:
        import base64
        import binascii
        for key in value:
            try:
                raw = base64.b64decode(key.strip(), validate=True)
            except binascii.Error:
                raw = b""
            if len(raw) != 32:
                raise ValueError(f"trusted key {key[:16]!r}… is not base64 of a raw 32-byte ed25519 public key")
        return [key.strip() for key in value]

    @field_validator("project_roots", mode="after")
    @classmethod
    def _absolute_roots(cls, value: list[Path]) -> list[Path]:
        relative = [str(root) for root in value if not root.is_absolute()]
        if relative:
            raise ValueError(f"project_roots must be absolute paths; refused: {', '.join(relative)}")
        return value

    @field_validator("oidc_connect_origins", mode="after")
    @classmethod
    def _bare_origins(cls, value: list[str]) -> list[str]:
        refused = [origin for origin in value if not ORIGIN.fullmatch(origin)]
        if refused:
            raise ValueError("oidc_connect_origins must be origins like https://host or https://host:port; "
                             f"refused: {', '.join(refused)[:200]}")
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

    @field_validator("tls_names")
    @classmethod
    def _tls_names_are_names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not TLS_NAME.fullmatch(name)]
        if bad:
            raise ValueError("tls_names must be DNS names or IP addresses; refused: " + ", ".join(map(repr, bad)))
        return value

    @model_validator(mode="after")
    def _ranges_ordered(self) -> Settings:
        if self.port_min > self.port_max:
            raise ValueError("port_min must not exceed port_max")
        if self.tenant_uid_min > self.tenant_uid_max:
            raise ValueError("tenant_uid_min must not exceed tenant_uid_max")
        if self.cache_low_watermark > self.cache_high_watermark:
            raise ValueError("cache_low_watermark must not exceed cache_high_watermark")
        if self.oidc_issuer and not self.oidc_audience:
            raise ValueError("oidc_audience is required when oidc_issuer is set")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together: set both, or neither")
        if self.tls_cert_file is not None and self.tls_self_signed:
            raise ValueError("tls_self_signed makes its own certificate: unset it, or the tls_*_file settings")
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
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
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

    @property
    def signing_key_path(self) -> Path:
        return self.signing_key_file or self.data_dir / "signing.key"


SECRET_FILE_SETTINGS = ("database_url", "redis_url", "s3_access_key", "s3_secret_key", "nomad_token")


class _SecretFileSource(PydanticBaseSettingsSource):
    """``SQLRS_<NAME>_FILE=/path`` reads a secret setting from a file (systemd credentials,
    ``LoadCredential=`` + ``%d``; Vault agent templates), so it never sits in the environment of
    every process or in a unit file. A trailing newline is dropped."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
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

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
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
