"""`sqlrs`: the command-line client of the appliance. It speaks only the v1 REST API."""
