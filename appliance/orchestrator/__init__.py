"""Admission, queueing, single-flight locks, deletion and the reconciler."""
