"""``sqlrs``: the command-line client of the appliance. It speaks only the v1 REST API.

May import: the foundation (``errors``, ``ids``, ``logs``) and the pure ``planning`` layer (to
pack bundles as the server reads them); nothing that runs on the server.
"""
