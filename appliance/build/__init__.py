"""The worker side: running one prepare job, from its queued tasks to a state and an instance.

- ``job``: a job's run (the worker's entry point): build locks, each task in order, snapshots,
  the instance at the end, and what a killed or failed run leaves behind;
- ``liquibase_steps`` (one changeset at a time) and ``liquibase_batch`` (one Liquibase run, a
  state per changeset): Liquibase's steps;
- ``state_import``: a state imported from the object store instead of built.

May import: ``orchestrator`` and every layer below it; never ``api``, ``service`` or ``cli``.
"""
