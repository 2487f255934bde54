"""Instance runtimes: how a Postgres cluster on a volume is started and stopped — as processes,
Docker containers or Nomad jobs, behind one Protocol (``base``) chosen by ``select``.

May import: the foundation, ``planning`` and ``isolation``.
"""
