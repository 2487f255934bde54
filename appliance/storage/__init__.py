"""Snapshot storage: one Protocol, drivers per filesystem, one shared layout.

May import: the foundation and ``isolation`` (who owns a state's files).
"""
