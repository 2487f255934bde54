"""Moving states between installations: the export manifest and the state streams written to and
read from the object store.

May import: ``context`` and every layer below it.
"""
