"""sqlrs appliance: PostgreSQL databases in content-addressed states, handed out as thin clones.

The packages form layers; each imports only those below it (``tests/architecture`` checks it):

    api | cli            service          the HTTP API, the client, the processes that run it all
    build                                 the worker side: running one prepare job
    orchestrator                          admission, placement, scheduling, cache, reconciler
    sources | instances | job_artifacts | transfer
    context                               Settings -> drivers and the Control DB, built once
    objectstore  control  liquibase_runners  runtime  storage  isolation     drivers, Control DB
    planning                              pure: a request -> content-addressed steps
    faults settings connections shell ids errors logs                       the foundation

The Python client, ``sqlrs_client`` (a package beside this one, which the CLI is built on), uses
only ``planning`` and the foundation.

May import: nothing here but ``__version__``.
"""

__version__ = "0.1.0"
