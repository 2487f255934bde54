"""Instance runtimes: how a Postgres cluster on a volume is started and stopped."""
