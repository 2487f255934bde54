"""Snapshot storage: one Protocol, drivers per filesystem, one shared layout."""
