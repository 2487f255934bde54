"""OS-level separation of tenants (DESIGN §2b): the API's org checks are not enough, because a
member's SQL, psql script or changelog runs attacker-chosen code as whatever OS identity runs it.

- ``identity``: which OS user an org's servers and client tools run as (one per org, made on
  first use), and who owns what on disk;
- ``sandbox``: the private mount view (bubblewrap) that confines psql, Liquibase and, on the
  process runtime, the Postgres server itself;
- ``level``: what this host can provide (``os`` or ``none``), why, and the one-org rule when it
  provides nothing.

May import: the foundation (``errors``, ``shell``, ``settings``) and ``planning``.
Nothing here knows about the Control DB, the store or a runtime: they ask this package.
"""
