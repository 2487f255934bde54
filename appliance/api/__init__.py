"""The v1 HTTP API (Quart): routes, auth, schemas, errors, streams.

May import: ``build`` and every layer below it (it enqueues, never runs, jobs); never
``service`` or ``cli``.
"""
