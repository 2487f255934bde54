"""The Control DB: the source of truth for jobs, tasks, events, states, instances and volumes.

- ``models``, ``migrations``, ``db``: the schema and its connection (SQLite or PostgreSQL);
- the reads every layer shares: ``scope`` (what an org may see), ``sharing``, ``quotas``,
  ``tenancy`` (the one-org rule), ``counters`` and ``audit``.

May import: the foundation, ``planning``, ``isolation`` and the drivers' value types.
"""
