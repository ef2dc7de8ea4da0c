# ferrolb: the README's two commands are the contract: `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: all deps tools crds check-crds manifests lint-images fmt fmt-check clippy test bench soak demo demo-down clean

all: test

## Everything the tests need, installed idempotently: Debian packages (BIRD 2, FRR, nftables,
## iproute2, capture tools) and the Go-built control-plane tools, cached outside the clone.
deps:
	bash e2e/scripts/install-packages.sh
	$(MAKE) tools

tools:
	bash e2e/control-plane/build.sh

## CRD YAML is generated from the Rust types; `make check-crds` fails when crds/ is stale.
crds:
	$(CARGO) run -q -p ferrolb-api --bin crdgen
	cp crds/*.yaml manifests/helm/ferrolb/crds/
	$(MAKE) manifests

## The plain install YAML, rendered from the chart (a test fails when it is stale).
manifests:
	bash manifests/render.sh

## Dockerfiles linted with hadolint (installed into the cache outside the clone).
lint-images:
	bash manifests/lint-images.sh

check-crds:
	$(CARGO) run -q -p ferrolb-api --bin crdgen -- --check

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Every behaviour: formatting, lints, CRD freshness, unit, property, CEL, integration and
## end-to-end tests against the real API server, kernel and routers. What CI runs.
test: deps fmt-check clippy check-crds lint-images
	$(CARGO) build --workspace --bins
	@mkdir -p target
	set -o pipefail; $(CARGO) test --workspace --no-fail-fast 2>&1 | tee target/test-output.log \
	  || { bash .ci/failure-digest.sh target/test-output.log; exit 1; }

## Benchmarks: figures printed and written to target/bench/results.json.
bench: deps
	mkdir -p target/bench
	# The benches drive the release binaries as processes.
	$(CARGO) build --release --workspace --bins
	$(CARGO) bench -p ferrolb-allocator --bench ipam
	$(CARGO) bench -p ferrolb-allocator --bench controller
	$(CARGO) bench -p ferrolb-lbnodeagent --bench agent
	$(CARGO) bench -p ferrolb-lbnodeagent --bench election
	$(CARGO) bench -p ferrolb-e2e --bench routing
	@echo "figures: target/bench/results.json"; cat target/bench/results.json

## Long fault-injection runs: figures printed and written to target/soak/results.json.
soak: deps
	mkdir -p target/soak
	# Tests named soak_*: short in `make test`, long here (FERROLB_SOAK=1).
	FERROLB_SOAK=1 $(CARGO) test --release --workspace soak_ -- --include-ignored --test-threads=1 --nocapture
	@echo "figures: target/soak/results.json"; cat target/soak/results.json

## ferrolb on a real cluster (images, 3 nodes with containerd, kubelet and kube-proxy, helm install);
## `make demo DEMO_ARGS=--processes` runs the earlier, faster demo without kubelets.
DEMO_ARGS ?=
demo: deps
	$(CARGO) build -q --workspace --bins
	$(CARGO) run -q -p ferrolb-e2e --bin ferrolb-demo -- $(DEMO_ARGS)

demo-down:
	$(CARGO) run -q -p ferrolb-e2e --bin ferrolb-demo -- --down

clean:
	$(CARGO) clean
