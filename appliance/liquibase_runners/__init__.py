"""Running the Liquibase CLI: one Protocol (``base``), two drivers and their ``select``.

- ``host``: the distribution at ``liquibase_home``, as the org's OS identity in a sandbox;
- ``container``: a Liquibase image, for hosts whose Postgres runs in containers.

May import: the foundation, ``planning`` (commands, what ``update-sql`` prints), ``isolation``.
"""
