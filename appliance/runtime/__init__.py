"""Instance runtimes: how a Postgres cluster on a volume is started and stopped — as processes,
Docker containers or Nomad jobs, behind one Protocol (``base``) chosen by ``select``.

What every driver shares lives beside them, never in one of them: cluster settings and checked
inputs (``cluster``), the host's Postgres tools and the mixin each driver builds on
(``host_tools``), and what postmaster.pid and /proc say about a server (``postmaster``).

May import: the foundation, ``planning`` and ``isolation``.
"""
