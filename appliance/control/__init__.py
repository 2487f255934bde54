"""The Control DB: the source of truth for jobs, tasks, events, states, instances and volumes."""
