# The two commands of the README. Both install what they need first.
.PHONY: demo test bench

demo:  ## run the embedded appliance and prepare the example database
	./scripts/demo

test:  ## install everything the tests need and run them
	./scripts/test

bench:  ## cache-hit vs rebuild benchmark (writes bench/out/)
	python3 bench/prepare_bench.py
