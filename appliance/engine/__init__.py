"""Planner layer: turns a request into content-addressed steps and validates uploaded sources.

Pure Python; nothing here runs Postgres. See ``hashing`` (the one hash primitive),
``psql`` (step split and per-step hashes), ``bundle`` (server-side source bundles) and
``packing`` (client-side bundle creation).
"""
