# Points: `make run` starts the suite, `make test` tests it. Both set themselves up first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
GEN := gen
PROTOS := $(shell find protos -name '*.proto' | sort)
PYTEST_ARGS ?=

.PHONY: setup protos openapi k8s proto-release image-lock run test unit lint bench bench-check clean clean-data test-tools screenshots

## setup: virtualenv in .venv with pinned dependencies, generated protobuf code in gen/
setup: $(VENV)/.installed $(GEN)/.stamp

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c requirements.lock -e '.[dev]' --config-settings editable_mode=compat
	# Generated code is importable as `loyalty.*` (protoc -I protos) from anywhere in the venv.
	echo "$(CURDIR)/$(GEN)" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/points-gen.pth"
	touch $@

$(GEN)/.stamp: $(VENV)/.installed $(PROTOS)
	rm -rf $(GEN) && mkdir -p $(GEN)
	$(PY) -m grpc_tools.protoc -I protos \
		--plugin=protoc-gen-mypy=$(VENV)/bin/protoc-gen-mypy \
		--plugin=protoc-gen-mypy_grpc=$(VENV)/bin/protoc-gen-mypy_grpc \
		--python_out=$(GEN) --grpc_python_out=$(GEN) --mypy_out=$(GEN) --mypy_grpc_out=$(GEN) \
		$(PROTOS)
	find $(GEN)/loyalty -type d -exec touch {}/__init__.py \;
	touch $(GEN)/py.typed $@

## protos: regenerate gen/ from protos/ unconditionally
protos:
	rm -f $(GEN)/.stamp
	$(MAKE) $(GEN)/.stamp

## k8s: write the per-process Kubernetes manifests in deploy/k8s (committed; a test checks them)
k8s: setup
	$(PY) -m scripts.k8s_manifests

## openapi: write the gateway's OpenAPI document to openapi.json (committed; a test checks it)
openapi: setup
	$(PY) scripts/openapi.py

## run: start the database (embedded when DATABASE_URL is unset) and every service; Ctrl-C stops all
run: setup
	$(PY) scripts/run_suite.py

## test: the whole test suite against a real PostgreSQL (TEST_DATABASE_URL, else embedded)
test: setup node_modules/.installed test-tools
	$(PY) -m pytest $(PYTEST_ARGS)

## unit: the unit tests alone (pure logic, no database, no servers): seconds, for every edit
unit: setup
	$(PY) -m pytest -q tests/unit

## test-tools: Debian's Chromium for the console's browser tests (Playwright drives it; its own
## browser download is not reachable everywhere), libfaketime for the test that runs the suite
## a year ahead, pg_auto_failover and PgBouncer for the failover and pooling tests, a Chinese
## font for the console's screenshots and Chinese pages. Installed
## when missing and run as root.
TEST_PACKAGES = chromium faketime postgresql-15-auto-failover pgbouncer fonts-wqy-microhei
test-tools:
	@{ command -v chromium && command -v faketime && command -v pg_autoctl \
	   && command -v pgbouncer && test -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc; } >/dev/null \
		|| { [ "$$(id -u)" = 0 ] && export DEBIAN_FRONTEND=noninteractive \
		&& { apt-get install -y -q $(TEST_PACKAGES) >/dev/null 2>&1 \
		     || { apt-get update -q >/dev/null && apt-get install -y -q $(TEST_PACKAGES) >/dev/null; }; }; } \
		|| { echo "missing: apt-get install $(TEST_PACKAGES) (as root)"; exit 1; }

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## lint: ruff (with its complexity rules) and the size limits (scripts/check_sizes.py), mypy
## (strict), the console's JavaScript type-checked (tsc --checkJs) and linted (Biome), buf lint
## of the protos and no breaking change against the release, Redocly on the OpenAPI document,
## squawk on the migrations (.squawk.toml)
lint: setup node_modules/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m scripts.check_sizes
	$(PY) -m mypy
	./node_modules/.bin/tsc -p tsconfig.console.json
	./node_modules/.bin/biome lint
	./node_modules/.bin/buf lint
	./node_modules/.bin/buf breaking --against deploy/protos-release.binpb
	./node_modules/.bin/redocly lint --format=summary openapi.json
	$(VENV)/bin/squawk --reporter gcc 'services/*/migrations/*.sql'

## image-lock: the hashed locks the image installs from (deploy/requirements-*.lock), from
## deploy/requirements-*.in within the versions requirements.lock pins
image-lock: setup
	$(VENV)/bin/pip install -q uv==0.13.9
	for part in image protoc; do \
		$(VENV)/bin/uv pip compile deploy/requirements-$$part.in -c requirements.lock \
			--generate-hashes --universal --python-version 3.11 --no-header --quiet \
			-o deploy/requirements-$$part.lock || exit 1; \
	done

## proto-release: record the protos as released (what `make lint` checks breaking changes against)
proto-release: node_modules/.installed
	./node_modules/.bin/buf build -o deploy/protos-release.binpb

## screenshots: the README's console screenshots (docs/console-*.png), taken by the browser test
## that walks every page
screenshots: setup test-tools
	SCREENSHOTS_DIR=docs $(PY) -m pytest -q tests/browser/test_console_operator.py -k every_page

## bench: benchmarks printing figures against a baseline measured in the same run
bench: setup test-tools
	@# wrk (Debian's package) loads the gateway from C instead of competing for the CPU in Python
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q wrk >/dev/null; } \
		|| echo "wrk not installed: the gateway bench falls back to a Python client"
	@for script in bench/[a-z]*_*.py; do \
		echo "== $$script"; $(PY) $$script || exit 1; \
	done 2>&1 | tee .bench.log; test $${PIPESTATUS[0]} = 0
	@$(PY) -m bench.budget table .bench.log

## bench-check: each hot path's CPU per operation against bench/budget.json (CI runs it)
bench-check: setup
	$(PY) -m bench.budget check

## clean: remove everything generated or installed (keeps the embedded database's data)
clean:
	-[ -x $(PY) ] && $(PY) scripts/devdb.py stop
	rm -rf $(VENV) $(GEN) node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis .schemathesis

## clean-data: stop the embedded database and delete its data
clean-data:
	-$(PYTHON) scripts/devdb.py destroy
	rm -rf .data
