"""Running the appliance: the embedded supervisor, workers, the reconciler loop, doctor and the
``sqlrs-appliance`` command.

May import: every layer (it is the top).
"""
