# The two commands of the README. Both install what they need first.
.PHONY: demo test bench

demo:  ## run the embedded appliance and prepare the example database
	./scripts/demo

test:  ## install everything the tests need and run them
	./scripts/test

bench:  ## cache-hit vs rebuild benchmark (writes bench/out/)
	python3 bench/prepare_bench.py

.PHONY: clone-bench
clone-bench:  ## snapshot/clone/start time vs state size on btrfs and zfs (writes bench/out/clone.*)
	python3 bench/clone_bench.py
