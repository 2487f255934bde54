"""Planning: a request becomes content-addressed steps. Pure Python: nothing here runs Postgres,
opens the Control DB or touches a store.

- ``hashing``: the one hash primitive and the key of a base image;
- ``psql``: psql's arguments, lexer, includes and the split into steps;
- ``liquibase``: Liquibase's arguments, changelogs, what ``update-sql`` prints, changeset keys;
- ``bundle`` and ``packing``: the source bundle format, read by the server and written by clients.

May import: the foundation (``errors``, ``ids``, ``logs``) only.
"""
