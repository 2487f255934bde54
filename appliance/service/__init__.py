"""Running the appliance: the embedded supervisor, workers and the reconciler loop."""
