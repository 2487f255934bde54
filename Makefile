# The two commands of the README. Both install what they need first.
.PHONY: demo test bench

demo:  ## run the embedded appliance and prepare the example database
	./scripts/demo

test:  ## install everything the tests need and run them
	./scripts/test

.PHONY: screenshots
screenshots:  ## the web console's browser tests, keeping their screenshots in docs/ui (what docs/ui.md shows)
	./scripts/install-deps --tests
	SQLRS_CONSOLE_SHOTS=docs/ui python3 -m pytest -q tests/console

# What the before/after benches compare against: main before the speed work.
BASELINE_REV ?= e308f49

.PHONY: lock lock-upgrade test-latest
PIP_COMPILE = python3 -m piptools compile --quiet --all-extras --strip-extras --allow-unsafe \
  --no-emit-index-url --no-emit-find-links -o constraints.txt setup.cfg
lock:  ## refresh constraints.txt, the lock every install uses: keeps today's pins that still satisfy setup.cfg
	python3 -m pip install -q 'pip-tools>=7.4,<8'
	$(PIP_COMPILE)

lock-upgrade:  ## the same, every pin moved to the newest version setup.cfg allows (then run make test)
	python3 -m pip install -q 'pip-tools>=7.4,<8'
	$(PIP_COMPILE) --upgrade

test-latest:  ## the test suite in a fresh virtualenv with the newest versions setup.cfg allows, not the lock
	./scripts/test-latest

bench:  ## cache-hit vs rebuild benchmark (writes bench/out/)
	python3 bench/prepare_bench.py

.PHONY: clone-bench
clone-bench:  ## snapshot/clone/start time vs state size on btrfs and zfs (writes bench/out/clone.*)
	python3 bench/clone_bench.py

.PHONY: runtime-bench
runtime-bench:  ## cache-hit time per runtime, warm pool off and on (writes bench/out/runtimes.*)
	python3 bench/runtime_bench.py

.PHONY: density-bench
density-bench:  ## idle instances per GB of RAM, default and reduced Postgres settings (writes bench/out/density.*)
	python3 bench/density_bench.py

.PHONY: transfer-bench
transfer-bench:  ## export/import of a ~1 GB state on btrfs and zfs, raw vs compressed: MB/s and ratio (writes bench/out/transfer.*)
	python3 bench/transfer_bench.py

.PHONY: load-bench
load-bench:  ## 54 clients in 3 orgs for 150 s: throughput, p50/p95/p99 to DSN, fairness (writes bench/out/load.*)
	python3 bench/load_bench.py

.PHONY: throughput-bench
throughput-bench:  ## 50 clients, cache hits only, 150 s, before (BASELINE_REV) and after, pool off and on (writes bench/out/load-hits*)
	python3 bench/load_bench.py --hit-ratio 1 --clients 17,17,16 --baseline-rev $(BASELINE_REV)
	python3 bench/load_bench.py --hit-ratio 1 --clients 17,17,16 --baseline-rev $(BASELINE_REV) --pool-size 4

.PHONY: cli-bench
cli-bench:  ## a cache hit through the sqlrs CLI vs the API, 1 GiB state, before (BASELINE_REV) and after (writes bench/out/cli*)
	python3 bench/cli_bench.py --baseline-rev $(BASELINE_REV)
	python3 bench/cli_bench.py --baseline-rev $(BASELINE_REV) --small-only --pool-size 2

.PHONY: fixture-bench
fixture-bench:  ## the pytest plugin's per-test database: its overhead with the warm pool off and on (writes bench/out/fixture.*)
	python3 bench/fixture_bench.py

.PHONY: history-bench
history-bench:  ## admission, GET job, list pages, /metrics and a reconciler pass with a year of history vs none, SQLite and PostgreSQL (writes bench/out/history.*)
	python3 bench/history_bench.py

.PHONY: hit-profile
hit-profile:  ## where a cache hit's milliseconds go (py-spy), before (BASELINE_REV) and after (writes bench/out/hit-profile*)
	python3 bench/hit_profile.py --baseline-rev $(BASELINE_REV)

.PHONY: liquibase-bench
liquibase-bench:  ## prepare:lb cold build (one Liquibase per changeset vs per run), repeat (plan cache + warm pool), JVM overhead (writes bench/out/liquibase.*)
	python3 bench/liquibase_bench.py

.PHONY: bundle
bundle:  ## offline install bundle: dist/sqlrs-appliance-<version>.tar.gz (wheels, .debs, image, playbook)
	./scripts/build-bundle

.PHONY: metrics-bench
metrics-bench:  ## /metrics scrape time with 10 vs 1,000,000 tasks of history, SQLite and PostgreSQL Control DB (writes bench/out/metrics.*)
	python3 bench/metrics_bench.py

.PHONY: isolation-bench
isolation-bench:  ## cache-hit time without and with tenant isolation, warm pool off and on (writes bench/out/isolation.*)
	python3 bench/isolation_bench.py
