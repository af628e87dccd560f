# aipolicy: `make demo` runs it on a local cluster, `make test` tests it. `make help` lists the rest.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CLUSTER_RUN ?= $(CURDIR)/.cluster
export CLUSTER_RUN

include hack/versions.env
CACHE        ?= $(or $(AIPOLICY_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/aipolicy)
CLUSTER_BIN  ?= $(CACHE)/bin/k8s-$(K8S_VERSION)-etcd-$(ETCD_VERSION)-kwok-$(KWOK_VERSION)-ksm-$(KSM_VERSION)
KUBECTL      := $(CLUSTER_BIN)/kubectl
PYTEST_ARGS  ?=

.PHONY: help
help: ## Show the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

## ---- Python ----
$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "aipolicy needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

.PHONY: install
install: $(VENV)/.installed ## Create .venv with aipolicy and its dev tools

.PHONY: lint
lint: install ## ruff (lint and format check)
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench

.PHONY: fmt
fmt: install ## Format the code
	$(BIN)/ruff check --fix operator tests bench
	$(BIN)/ruff format operator tests bench

.PHONY: typecheck
typecheck: install ## mypy --strict
	$(BIN)/mypy

.PHONY: crds
crds: install ## Generate crds/*.yaml (and the Helm chart's and kustomize base's copies) from the pydantic models
	$(BIN)/aipolicy crds --output crds --output charts/aipolicy/crds --output manifests/base/crds

## ---- Tests ----
.PHONY: test
test: install cluster-binaries prometheus alertmanager image helm health chromium ## Lint, typecheck, unit and e2e tests (e2e on a local cluster it starts)
	$(MAKE) --no-print-directory lint typecheck
	$(BIN)/pytest tests/unit tests/e2e --cluster-bin=$(CLUSTER_BIN) --durations=25 $(PYTEST_ARGS)
	$(MAKE) --no-print-directory e2e-existing

.PHONY: e2e-existing
e2e-existing: install cluster-binaries prometheus ## A few e2e tests with --cluster=existing against a cluster started apart
	@CLUSTER_BIN=$(CLUSTER_BIN) hack/e2e-existing.sh $(PYTEST_ARGS)

.PHONY: unit
unit: install prometheus ## Unit tests of the pure core and the shipped rules (fast, no cluster; promtool)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

.PHONY: e2e
e2e: install cluster-binaries prometheus alertmanager image helm health chromium ## e2e tests; CLUSTER=local|kind|existing (default local)
	$(BIN)/pytest tests/e2e --cluster=$(or $(CLUSTER),local) --cluster-bin=$(CLUSTER_BIN) $(PYTEST_ARGS)

## ---- Local cluster ----
.PHONY: cluster-binaries
cluster-binaries: ## Build etcd, kube-*, kubectl, kwok, kube-state-metrics from Go modules (cached)
	@CLUSTER_BIN=$(CLUSTER_BIN) hack/build-cluster-binaries.sh >/dev/null

## ---- Image, chart and GitOps tools ----
.PHONY: image
image: ## Build the container image localhost/aipolicy:dev with podman (base and wheels cached)
	@hack/image.sh

.PHONY: helm
helm: ## Build helm from its Go module (cached), for the chart tests
	@hack/build-helm.sh >/dev/null

.PHONY: health
health: ## Build hack/health (Argo CD's Lua VM and kstatus, for the tests; cached)
	@hack/build-health.sh >/dev/null

.PHONY: helm-path
helm-path: ## Print the path of the helm built for the tests (use with make -s)
	@hack/build-helm.sh

.PHONY: prometheus
prometheus: ## Install Prometheus from Debian's packages if missing
	@hack/install-prometheus.sh

.PHONY: alertmanager
alertmanager: ## Install Alertmanager from Debian's packages if missing (the notification e2e tests start it)
	@hack/install-alertmanager.sh

.PHONY: chromium
chromium: ## Install Debian's Chromium if missing (the HTML report's browser test)
	@hack/install-chromium.sh

.PHONY: cluster-up
cluster-up: cluster-binaries prometheus ## Start the loopback cluster and Prometheus; waits until usable
	@CLUSTER_BIN=$(CLUSTER_BIN) hack/cluster.sh up

.PHONY: cluster-down
cluster-down: ## Stop exactly the processes cluster-up started
	@CLUSTER_BIN=$(CLUSTER_BIN) hack/cluster.sh down

.PHONY: cluster-status
cluster-status: ## Show which cluster processes run
	@CLUSTER_BIN=$(CLUSTER_BIN) hack/cluster.sh status

.PHONY: kubeconfig
kubeconfig: ## Print the local cluster's kubeconfig path (use with make -s)
	@echo $(CLUSTER_RUN)/kubeconfig

.PHONY: prometheus-url
prometheus-url: ## Print the local Prometheus URL (use with make -s)
	@source $(CLUSTER_RUN)/env && echo $$PROMETHEUS_URL

.PHONY: kubectl-path
kubectl-path: ## Print the path of the kubectl built for the local cluster (use with make -s)
	@echo $(KUBECTL)

## ---- Demo and benchmarks ----
.PHONY: demo
demo: install cluster-binaries prometheus ## Run aipolicy on a local cluster with simulated traffic
	$(BIN)/python hack/demo.py --cluster-bin=$(CLUSTER_BIN) $(DEMO_ARGS)

.PHONY: bench
bench: install cluster-binaries prometheus ## Run the benchmarks (pure core and on a local cluster); writes BENCHMARKS.md
	@CLUSTER_BIN=$(CLUSTER_BIN) hack/bench.sh

.PHONY: clean
clean: ## Remove the venv, caches and the local cluster's state (stop it first)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .cluster
