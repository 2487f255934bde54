"""One blueprint per resource of the v1 API.

May import: the rest of ``appliance.api`` and every layer below it.
"""
