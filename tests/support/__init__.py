"""Helpers the tests share: plain modules, imported by name. Fixtures live in conftest.py files
(the nearest one common to their users), and no module imports a conftest or a test module
(tests/architecture/test_test_layout.py checks both).

- ``api``: an app built without a running appliance (to list its routes), ``serve_api``
  (`sqlrs-appliance api` really served, on HTTP or HTTPS) and its ``ServedApi``, and
  ``assert_rejected`` for the answer a bad request must get.
- ``appliance``: a real running appliance for a module (``appliance_on``, ``start_appliance``)
  and ``FAST_RECOVERY``, the settings that make lost jobs and reconciliation quick.
- ``browser``: a headless Chromium through selenium (``chromium``), and ``Console``, the web
  console's pages as a person uses them (sign in, wait for, click, copy, screenshots).
- ``btrfs``: skipping loudly where btrfs cannot be mounted, removing a tree of subvolumes,
  ``SMALL_IMAGE_BYTES``.
- ``clusters``: ``ClusterTemplates`` (one initdb per runtime, copied per test; the
  ``cluster_templates`` fixture), killing a cluster behind its runtime's back, finding a Nomad task's
  container.
- ``docker``: the Docker engine, the project's images, the Nomad-API double's process.
- ``filesystems``: a small tmpfs, for running out of space.
- ``immutable``: a directory nothing can remove (chattr +i).
- ``jobs``: jobs in given states without a worker.
- ``liquibase``: the shop changelog and its ``prepare`` (end to end), the mixed-format changelog and
  its ``plan`` (the runners).
- ``lvm``: a strict double of lvm2 and util-linux.
- ``measurements``: numbers the packaging tests print at the end of the run.
- ``mounts``: a read-only bind mount.
- ``objectstores``: multipart uploads left open, two hosts sharing one object store, and a chain of
  three states built and exported on one of them.
- ``oidc``: a local OIDC issuer.
- ``polling``: the one polling loop, ``eventually`` and ``wait_until``.
- ``ports``: a free loopback TCP port.
- ``postgres``: ``ThrowawayPostgres``, the session's server for the Control DB on PostgreSQL.
- ``prepares``: the three-step psql prepare and the executed steps of a prepare's status.
- ``processes``: the processes serving a data dir, as /proc shows them.
- ``psql``: psql against a DSN the appliance handed out.
- ``recording``: ``RecordingRunner``, a strict double of the command runner for driver tests.
- ``s3``: a real S3 server (moto) and the settings that point at it.
- ``states``: a committed state on a store and its row, made without a build.
- ``stock``: a stock PostgreSQL cluster and plain dumps of it.
- ``tarballs``: hand-made tar.gz archives and tar entries.
- ``tenants``: two orgs on one appliance, for the isolation suite.
- ``transfers``: exports and imports the API queued, run in-process as a worker runs them.
- ``tmpdirs``: temporary directories the unprivileged Postgres user can traverse.
- ``zfs``: a file-backed zfs pool and the zfs driver on a fresh dataset of it.

A few suites keep a helper module of their own beside their tests (tests/e2e/harness.py,
tests/faults/rig.py, tests/runtime/pg.py, tests/packaging/units.py and offline_host.py): plain
modules as well, which other suites may import too.
"""
