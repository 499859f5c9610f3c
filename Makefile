# pg2bq: the two commands are `make demo` and `make test`; the rest are their parts.
SHELL := /bin/bash
.DEFAULT_GOAL := help
STACK := infra/local/stack.sh
PIPELINE := infra/local/pipeline.sh
ENV_FILE := .local/stack.env
CARGO ?= cargo
IMAGE_REPO ?=
IMAGE_TAG ?=

.PHONY: help build up down status demo test unit e2e lint fmt clean-stack pg-versions tf-check tf-plan-check image image-push image-cloud bench chaos

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

build: ## Build the binaries and the tests (debug)
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found: install Rust from https://rustup.rs"; exit 1; }
	$(CARGO) build --workspace --all-targets

up: ## Start the local stack: PostgreSQL (PG2BQ_PG_VERSION=14..18 picks the version), Pub/Sub emulator, bqemulator, Cloud Storage emulator
	@$(STACK) up

pg-versions: ## Fetch the pinned PostgreSQL 14 to 18 server builds (npm) the version tests run, into .local/postgresql (once)
	@$(STACK) fetch-pg

down: ## Stop the demo pipeline and the local stack
	@if [ -f $(ENV_FILE) ]; then $(PIPELINE) stop; fi
	@$(STACK) down

status: ## Show what runs
	@$(STACK) status
	@if [ -f $(ENV_FILE) ]; then $(PIPELINE) status; fi

demo: build up ## Run the pipeline on sample data and compare PostgreSQL with BigQuery
	@infra/demo/demo.sh

test: build up pg-versions lint tf-check tf-plan-check ## Everything the tests need, then all tests (unit and end-to-end)
	@set -a && source $(ENV_FILE) && set +a && $(CARGO) test --workspace --no-fail-fast

chaos: build up ## The full fault suite: pgbench (scale 5, 4 clients, 180 s) while every component fails; compares every row (PG2BQ_CHAOS_SEED replays a run)
	@set -a && source $(ENV_FILE) && set +a && CARGO=$(CARGO) infra/local/chaos.sh

bench: up ## Benchmarks on the local stack (release build): prints a table, writes target/bench/summary.json
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found: install Rust from https://rustup.rs"; exit 1; }
	$(CARGO) build --release --workspace --bins
	@set -a && source $(ENV_FILE) && set +a && PG2BQ_BIN_DIR=target/release target/release/bench $(BENCH_ARGS)

unit: ## Unit tests only (no local stack)
	$(CARGO) test --workspace --lib --bins

lint: ## Formatting and clippy
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --quiet -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

clean-stack: ## Stop the stack and delete its data (keeps the Python venv and the fetched PostgreSQL builds)
	@$(STACK) reset

tf-check: ## Offline checks of terraform/ and the Dockerfile: fmt, provider schema, checkov
	@infra/checks/terraform.sh

tf-plan-check: tf-check ## terraform validate from a local provider directory if there is one; values the provider or the APIs refuse
	@infra/checks/terraform-plan.sh

image: ## Build the capture, writer and cli images with docker (IMAGE_REPO=..., IMAGE_TAG=...)
	@IMAGE_REPO="$(IMAGE_REPO)" IMAGE_TAG="$(IMAGE_TAG)" infra/docker/image.sh build

image-push: ## Push the images built by `make image` to IMAGE_REPO
	@IMAGE_REPO="$(IMAGE_REPO)" IMAGE_TAG="$(IMAGE_TAG)" infra/docker/image.sh push

image-cloud: ## Build and push the images in Cloud Build (no local docker; IMAGE_REPO=...)
	@IMAGE_REPO="$(IMAGE_REPO)" IMAGE_TAG="$(IMAGE_TAG)" infra/docker/image.sh cloudbuild
