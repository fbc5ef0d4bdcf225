# DeepSeek-OCR KServe predictor. `make help` lists the targets.
PYTHON ?= python3
PORT ?= 8080
GRPC_PORT ?= 8081
DEMO_DIR ?= .cache/tiny-deepseek-ocr2
MODEL_ID ?= deepseek-ai/DeepSeek-OCR
TORCH_VERSION ?= 2.13.0

.PHONY: help install run demo demo-serve test test-fast test-unit test-api test-e2e test-interop test-ray ray-run chart-test clone-test image-test lint bench soak clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install: ## install the package, test tools, interop clients and Ray Serve (CPU torch first, so pip never pulls a CUDA build)
	$(PYTHON) -m pip install -q "torch==$(TORCH_VERSION)"
	# one pip run for the project and its extras: ray[serve] resolved alone upgrades protobuf past kserve's pin
	$(PYTHON) -m pip install -q -e ".[test,ray,interop]"
	$(PYTHON) scripts/pip_check.py test,ray,interop

run: install ## serve $(MODEL_ID) (downloaded from the hub); offline, says so and serves the tiny demo
	MODEL_ID=$(MODEL_ID) PORT=$(PORT) GRPC_PORT=$(GRPC_PORT) PYTHON=$(PYTHON) bash scripts/run.sh

demo: install demo-serve ## serve a tiny random DeepSeek-OCR-2 offline (the API is real, the text is random)

demo-serve:
	$(PYTHON) -m predictor.testing.tiny --family v2 $(DEMO_DIR) >/dev/null
	HF_HUB_OFFLINE=1 $(PYTHON) -m predictor --model_dir $(DEMO_DIR) --device cpu --http_port $(PORT) --grpc_port $(GRPC_PORT)

test: install lint test-unit test-api test-e2e test-interop chart-test clone-test test-ray ## everything CI runs

test-fast: lint ## lint + unit + api tiers without the tests marked slow (a few minutes; no install, no servers)
	$(PYTHON) -m pytest -q -m "not slow" tests/unit tests/api

test-unit:
	$(PYTHON) -m pytest -q tests/unit

test-api:
	$(PYTHON) -m pytest -q tests/api

test-e2e:
	$(PYTHON) -m pytest -q tests/e2e

test-interop: ## client packages nobody here wrote (tritonclient, kserve, openai, LangChain, LiteLLM) vs a real server
	$(PYTHON) -m pytest -q tests/interop

test-ray: ## Ray Serve tier: a real local Ray (2 CPUs, no dashboard), ~5 min
	RAY_TESTS_REQUIRED=1 $(PYTHON) -m pytest -q tests/ray

ray-run: install ## serve the tiny offline demo on Ray Serve (python -m predictor.ray_serve), on $(PORT) and $(GRPC_PORT)
	$(PYTHON) -m predictor.testing.tiny --family v2 $(DEMO_DIR) >/dev/null
	HF_HUB_OFFLINE=1 $(PYTHON) -m predictor.ray_serve --model_dir $(DEMO_DIR) --device cpu --http_port $(PORT) --grpc_port $(GRPC_PORT)

chart-test: ## Helm chart lint, render, schema and API-server checks (installs helm etc. if missing)
	PREDICTOR_PYTHON="$${PREDICTOR_PYTHON:-$$(command -v $(PYTHON))}" bash scripts/chart-test.sh

clone-test: ## git clone HEAD into an empty temp folder; run the unit and chart render/schema tiers there
	PYTHON=$(PYTHON) bash scripts/clone-test.sh

image-test: ## build the Containerfile from a local stand-in base and probe readiness (not part of `make test`)
	bash scripts/image-test.sh

lint:
	$(PYTHON) -m ruff check predictor tests bench

bench: install ## batching benchmark (c=1 vs c=8 at 512 and 2,048 tokens, median of 3), then post-processing with figures
	OMP_NUM_THREADS=1 $(PYTHON) bench/bench_batching.py --tokens 512 2048 --repeats 3
	OMP_NUM_THREADS=1 $(PYTHON) bench/bench_postprocess.py

soak: ## reliability suite on the tiny model, loopback only (5-10 min; not part of `make test`; see docs/RELIABILITY.md)
	OMP_NUM_THREADS=1 PYTHONPATH=$(CURDIR) $(PYTHON) -m tests.soak.run_soak

clean:
	rm -rf .cache build dist *.egg-info .pytest_cache .ruff_cache
