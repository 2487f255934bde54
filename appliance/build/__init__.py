"""The worker side: running one prepare job, from its queued tasks to a state and an instance.

- ``job``: a job's run (the worker's entry point): build locks, each task in order, snapshots,
  the instance at the end, and what a killed or failed run leaves behind;
- ``steps``: the step kinds behind one Protocol (``StepKind``): ``psql_steps`` (one psql run
  per step) and ``liquibase`` (``liquibase_steps``: planning on a worker and one changeset at a
  time; ``liquibase_batch``: one Liquibase run, a state per changeset);
- ``state_import``: a state imported from the object store instead of built;
- ``out_of_space``: a full store while building is the cache's error, not the user's.

May import: ``orchestrator`` and every layer below it; never ``api``, ``service`` or ``cli``.
"""
