"""Versioned schema migrations, applied in order, each in its own transaction.

A migration is appended, never edited, once it has shipped: the version number in
``schema_version`` is how an upgraded appliance knows what an old Control DB already has.
"""
from __future__ import annotations

from collections.abc import Callable

import peewee as pw

from appliance.control import models as m

_V1_MODELS = [m.Org, m.ApiToken, m.SourceBundle, m.Project, m.PrepareJob, m.Task, m.JobEvent, m.BaseImage,
              m.State, m.Volume, m.Instance]


def _v1_initial(db: pw.Database) -> None:
    db.create_tables(_V1_MODELS)


def _v2_cache_evictions(db: pw.Database) -> None:
    db.create_tables([m.CacheEviction])
    db.execute_sql("CREATE INDEX IF NOT EXISTS state_last_used_at ON state (last_used_at)")


def _v3_state_exported_at(db: pw.Database) -> None:
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as apply
    if _has_column(db, "state", "exported_at"):
        return
    apply(SchemaMigrator.from_database(db).add_column("state", "exported_at", pw.DateTimeField(null=True)))


def _v4_hosts(db: pw.Database) -> None:
    """The host registry, and a host id on everything that lives on one host's disk.

    Rows written before it belong to the one host an appliance had then: the empty host id is
    claimed by the first host that registers (``orchestrator.hosts.register``)."""
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as apply
    db.create_tables([m.Host], safe=True)
    migrator = SchemaMigrator.from_database(db)
    for table, column, field in (("prepare_job", "host_id", pw.CharField(max_length=63, null=True)),
                                 ("base_image", "host_id", pw.CharField(max_length=63, default="")),
                                 ("volume", "host_id", pw.CharField(max_length=63, default="")),
                                 ("instance", "host_id", pw.CharField(max_length=63, default="")),
                                 ("state", "build_seconds", pw.FloatField(null=True))):
        if not _has_column(db, table, column):
            apply(migrator.add_column(table, column, field))
    _replace_unique_index(db, "state", ["org", "state_id"], ["org", "state_id", "host"])
    _replace_unique_index(db, "base_image", ["org", "base_key"], ["org", "base_key", "host_id"])
    for table in ("prepare_job", "volume", "instance"):
        db.execute_sql(f"CREATE INDEX IF NOT EXISTS {table}_host_id ON {table} (host_id)")


def _v5_api_token_lifecycle(db: pw.Database) -> None:
    """Robot tokens expire, are revoked and remember their last use; the tokens that existed
    before were all operator tokens (the token file, `sqlrs-appliance token`)."""
    import secrets

    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as apply
    migrator = SchemaMigrator.from_database(db)
    added_global = not _has_column(db, "api_token", "global_admin")
    for column, field in (("token_id", pw.CharField(max_length=32, null=True)),
                          ("global_admin", pw.BooleanField(default=False)),
                          ("created_by", pw.CharField(max_length=255, null=True)),
                          ("expires_at", pw.DateTimeField(null=True)),
                          ("revoked_at", pw.DateTimeField(null=True)),
                          ("last_used_at", pw.DateTimeField(null=True))):
        if not _has_column(db, "api_token", column):
            apply(migrator.add_column("api_token", column, field))
    if added_global:
        m.ApiToken.update(global_admin=True, created_by="operator").execute()
    for row in m.ApiToken.select().where(m.ApiToken.token_id.is_null()):
        m.ApiToken.update(token_id="tok_" + secrets.token_hex(8)).where(m.ApiToken.id == row.id).execute()
    db.execute_sql("CREATE UNIQUE INDEX IF NOT EXISTS api_token_token_id ON api_token (token_id)")


def _v6_audit(db: pw.Database) -> None:
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as apply
    db.create_tables([m.AuditEvent], safe=True)
    if not _has_column(db, "prepare_job", "submitted_by"):
        apply(SchemaMigrator.from_database(db).add_column("prepare_job", "submitted_by",
                                                          pw.CharField(max_length=255, null=True)))


def _v7_quotas(db: pw.Database) -> None:
    db.create_tables([m.OrgQuota], safe=True)


def _v8_instance_limits(db: pw.Database) -> None:
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as apply
    migrator = SchemaMigrator.from_database(db)
    for column, field in (("instance_memory_mb", pw.IntegerField(null=True)),
                          ("instance_cpus", pw.FloatField(null=True))):
        if not _has_column(db, "org_quota", column):
            apply(migrator.add_column("org_quota", column, field))


def _v9_state_shares(db: pw.Database) -> None:
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as apply
    db.create_tables([m.StateShare], safe=True)
    if not _has_column(db, "instance", "state_org"):
        apply(SchemaMigrator.from_database(db).add_column("instance", "state_org", pw.CharField(max_length=63, null=True)))


def _v10_observability(db: pw.Database) -> None:
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as apply
    migrator = SchemaMigrator.from_database(db)
    for table, column, field in (("prepare_job", "error_code", pw.CharField(max_length=64, null=True)),
                                 ("task", "duration_seconds", pw.FloatField(null=True)),
                                 ("state", "snapshot_seconds", pw.FloatField(null=True))):
        if not _has_column(db, table, column):
            apply(migrator.add_column(table, column, field))
    db.execute_sql("CREATE INDEX IF NOT EXISTS prepare_job_error_code ON prepare_job (error_code)")


def _v11_liquibase_plans(db: pw.Database) -> None:
    db.create_tables([m.LiquibasePlan], safe=True)


def _v12_counters_retention_installation(db: pw.Database) -> None:
    """Monotonic counters (they start at zero: Prometheus reads one reset at the upgrade), the
    installation's id, and the indexes that keep scrapes and retention from reading history."""
    db.create_tables([m.MetricCounter, m.Installation], safe=True)
    db.execute_sql("CREATE INDEX IF NOT EXISTS prepare_job_status_finished_at ON prepare_job (status, finished_at)")
    db.execute_sql("CREATE INDEX IF NOT EXISTS instance_status ON instance (status)")
    db.execute_sql("CREATE INDEX IF NOT EXISTS instance_job_id ON instance (job_id)")
    # A job cancelled while queued had no finished_at: give it one, so retention can age it.
    m.PrepareJob.update(finished_at=m.PrepareJob.created_at).where(
        m.PrepareJob.status.in_(["succeeded", "failed", "cancelled"]) & m.PrepareJob.finished_at.is_null()).execute()


def _v13_instance_teardown_retries(db: pw.Database) -> None:
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as apply
    migrator = SchemaMigrator.from_database(db)
    for column, field in (("teardown_keep_as", pw.CharField(max_length=16, null=True)),
                          ("teardown_attempts", pw.IntegerField(default=0)),
                          ("teardown_error", pw.TextField(null=True)),
                          ("teardown_retry_at", pw.DateTimeField(null=True))):
        if not _has_column(db, "instance", column):
            apply(migrator.add_column("instance", column, field))


def _v14_parked_jobs(db: pw.Database) -> None:
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as apply
    table = m.PrepareJob._meta.table_name
    if not _has_column(db, table, "parked_on"):
        apply(SchemaMigrator.from_database(db).add_column(table, "parked_on", pw.CharField(max_length=255, null=True)))


def _v15_page_indexes(db: pw.Database) -> None:
    """Keyset pages of an org's jobs, instances and states read an index in order (api.paging),
    retention finds the oldest ended jobs along one, and a scrape sums state bytes from one."""
    for model, columns in ((m.PrepareJob, ("org", "created_at", "job_id")),
                           (m.PrepareJob, ("finished_at",)),
                           (m.Instance, ("org", "created_at", "instance_id")),
                           (m.State, ("org", "state_id", "created_at")),
                           (m.State, ("org", "host", "size_bytes"))):
        table = model._meta.table_name
        db.execute_sql(f"CREATE INDEX IF NOT EXISTS {table}_{'_'.join(columns)} ON {table} ({', '.join(columns)})")


def _v16_first_copies_index(db: pw.Database) -> None:
    """A page of an org's states walks its copies in creation order (api/routes/states.py)."""
    db.execute_sql("CREATE INDEX IF NOT EXISTS state_org_created_at_state_id ON state (org, created_at, state_id)")


def _v17_transfers(db: pw.Database) -> None:
    """Exports and imports run as jobs on a worker (``appliance.transfer.jobs``)."""
    db.create_tables([m.Transfer], safe=True)


def _v18_instance_tls(db: pw.Database) -> None:
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as apply
    if not _has_column(db, "instance", "tls"):
        apply(SchemaMigrator.from_database(db).add_column("instance", "tls", pw.BooleanField(default=False)))


def _replace_unique_index(db: pw.Database, table: str, old: list[str], new: list[str]) -> None:
    for index in db.get_indexes(table):
        if index.unique and list(index.columns) == old:
            db.execute_sql(f"DROP INDEX {index.name}")
    name = f"{table}_{'_'.join(new)}"
    db.execute_sql(f"CREATE UNIQUE INDEX IF NOT EXISTS {name} ON {table} ({', '.join(new)})")


def _has_column(db: pw.Database, table: str, column: str) -> bool:
    """Table-creating migrations build tables from today's models, so a column a later
    migration adds may already be there on a database created after it was written."""
    return any(c.name == column for c in db.get_columns(table))


MIGRATIONS: list[tuple[int, Callable[[pw.Database], None]]] = [
    (1, _v1_initial),
    (2, _v2_cache_evictions),
    (3, _v3_state_exported_at),
    (4, _v4_hosts),
    (5, _v5_api_token_lifecycle),
    (6, _v6_audit),
    (7, _v7_quotas),
    (8, _v8_instance_limits),
    (9, _v9_state_shares),
    (10, _v10_observability),
    (11, _v11_liquibase_plans),
    (12, _v12_counters_retention_installation),
    (13, _v13_instance_teardown_retries),
    (14, _v14_parked_jobs),
    (15, _v15_page_indexes),
    (16, _v16_first_copies_index),
    (17, _v17_transfers),
    (18, _v18_instance_tls),
]


def current_version(db: pw.Database) -> int:
    if not db.table_exists(m.SchemaVersion._meta.table_name):
        return 0
    row = m.SchemaVersion.select(pw.fn.MAX(m.SchemaVersion.version)).scalar()
    return row or 0


_MIGRATION_LOCK = 0x5351_4C52_5321  # a PostgreSQL advisory lock id: "SQLRS!"


def migrate(db: pw.Database) -> list[int]:
    """Bring the schema up to date; returns the versions applied now. Safe to run from several
    hosts at once (an upgrade rolling over a fleet): on PostgreSQL they take turns on an advisory
    lock, and each version is re-checked inside its own transaction."""
    postgres = isinstance(db, pw.PostgresqlDatabase)
    if postgres:
        db.execute_sql("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
    try:
        db.create_tables([m.SchemaVersion], safe=True)
        applied = []
        for version, step in MIGRATIONS:
            with db.atomic():
                if version <= current_version(db):
                    continue
                step(db)
                m.SchemaVersion.create(version=version)
            applied.append(version)
        return applied
    finally:
        if postgres:
            db.execute_sql("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))


def latest_version() -> int:
    return MIGRATIONS[-1][0]
