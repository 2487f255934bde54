"""A strict Nomad HTTP API double that runs docker tasks on the real Docker engine.

Run it as its own process: ``python -m tests.nomad_double --port P`` (the ACL token, if any,
comes from the ``NOMAD_DOUBLE_TOKEN`` environment variable so it never shows in a process list).
"""
