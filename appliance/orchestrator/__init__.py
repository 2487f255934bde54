"""Deciding what runs where: admission (``submit``, the prepare ``kinds``, ``tasks``,
``explain``, ``pooled_hits``), the queue and build locks, placement and scheduling, the cache
and the warm pool, deletion, retention, the host registry, and the reconciler that heals what
crashed processes left.

May import: ``sources``, ``instances``, ``job_artifacts``, ``transfer`` and every layer below;
never ``build`` (jobs reach workers through the queue, by name), ``api``, ``service``, ``cli``.
"""
