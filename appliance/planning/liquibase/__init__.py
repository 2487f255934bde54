"""Liquibase requests: arguments (``args``), changelogs (``changelogs``), what ``update-sql``
prints (``update_sql``) and the keys of the states its changesets build (``plans``).

May import: the rest of ``planning`` and the foundation.
"""
