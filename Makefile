# One entry point for learners and developers.
#   make lab    open the course in JupyterLab (creates .venv on first run)
#   make test   lint, format and type checks, check notebooks are stripped, run pytest
#   make bench  run the benchmarks
#   make pins   refresh the exact pins in the requirement files
#   make strip  remove the outputs JupyterLab saved into the lessons (edits stay)
#   make hub-deps  (root) JupyterHub + configurable-http-proxy for the multi-user test
#   make clean  remove the venv and caches
# Everything runs from .venv via `python -m pip`, never a global pip.
# Kept to GNU make 3.81 features: that is what macOS ships to learners.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --no-input --quiet

# `make lab` options; a test starts it headless on its own port, e.g.
#   make lab LAB_PORT=18888 \
#     LAB_ARGS="--no-browser --IdentityProvider.token=secret --ServerApp.port_retries=0"
# (--ServerApp.token works too but is deprecated; port_retries=0 makes a busy
# port an error instead of a silent move to the next port.)
LAB_PORT     ?= 8888
LAB_ARGS     ?=
LAB_NOTEBOOK ?= notebooks/00-start-here.ipynb
# Jupyter refuses to start as root unless told to (containers, CI); only then.
ROOT_FLAG = $(if $(filter 0,$(shell id -u)),--allow-root,)

PYTEST_ARGS ?=

.PHONY: lab test bench pins strip clean hub-deps

# The course's JupyterLab settings (no news pop-up over a projected screen, no
# update check) live in binder/jupyter-config, which Binder copies too (postBuild).
LAB_CONFIG := $(CURDIR)/binder/jupyter-config

lab: $(VENV)/.stamp-lab
	JUPYTER_CONFIG_PATH="$(LAB_CONFIG)$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
	  $(VENV)/bin/jupyter lab $(LAB_NOTEBOOK) --ip=127.0.0.1 --port=$(LAB_PORT) $(ROOT_FLAG) $(LAB_ARGS)

# Lint, notebook check and pytest all run even when an earlier one fails, so one
# run (one CI run) reports everything; the exit status is non-zero if any failed.
# `ruff format --check` keeps one style (an editor that formats on save makes no
# diff noise); `ruff check` also enforces import order (rule I) and a complexity
# limit (C90, 12 branches); mypy checks the package's types, strictly in
# labsmtp/protocol/ (settings in pyproject.toml).
# nbstripout checks outputs, execution counts and saved widget state; --keep-id
# because JupyterLab's random cell ids are harmless and renumbering them is churn.
# It checks the lessons as git will commit them (tools/verify_stripped.py), so
# outputs JupyterLab autosaved during a rehearsal do not fail `make test`.
test: $(VENV)/.stamp-dev
	@failed=""; \
	echo "$(PY) -m ruff check ."; \
	$(PY) -m ruff check . || failed="$$failed ruff"; \
	echo "$(PY) -m ruff format --check ."; \
	$(PY) -m ruff format --check . || failed="$$failed ruff-format"; \
	echo "$(PY) -m mypy"; \
	$(PY) -m mypy || failed="$$failed mypy"; \
	if ls notebooks/*.ipynb >/dev/null 2>&1; then \
	  echo "$(PY) tools/verify_stripped.py notebooks/*.ipynb"; \
	  $(PY) tools/verify_stripped.py notebooks/*.ipynb || failed="$$failed nbstripout"; \
	fi; \
	echo "$(PY) -m pytest $(PYTEST_ARGS)"; \
	$(PY) -m pytest $(PYTEST_ARGS) || failed="$$failed pytest"; \
	if [ -n "$$failed" ]; then echo "make test: failed:$$failed" >&2; exit 1; fi

# After a rehearsal in `make lab`: the lessons without their saved outputs, edits kept.
strip: $(VENV)/.stamp-dev
	$(PY) -m nbstripout --keep-id notebooks/*.ipynb

# JupyterHub (requirements-hub.txt) and configurable-http-proxy (npm) in a venv
# that every learner's system user can run: built from Debian's /usr/bin/python3
# in /opt, so it needs root (and npm: apt-get install nodejs npm). Cached: a
# second run returns at once. tests/test_multiuser.py runs it too.
HUB_VENV   ?= /opt/labsmtp-hub-venv
HUB_PYTHON ?= /usr/bin/python3

hub-deps:
	deploy/local/build-hub-env.sh $(HUB_VENV) $(HUB_PYTHON)

bench: $(VENV)/.stamp-dev
	$(PY) benchmarks/run.py
	$(PY) benchmarks/lessons.py

$(PY):
	$(PYTHON) -m venv $(VENV)

# Stamps: pip runs again only when a requirement file or pyproject.toml is newer
# than the last successful install, so a second `make test` starts at once.
# labsmtp goes in editable and without dependencies: the pins already provide them.
$(VENV)/.stamp-lab: requirements.txt pyproject.toml | $(PY)
	@echo "Installing requirements.txt into $(VENV) (a minute or two the first time)"
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps -e .
	touch $@

# requirements-dev.txt includes requirements.txt, so it satisfies the lab stamp too.
$(VENV)/.stamp-dev: requirements.txt requirements-dev.txt pyproject.toml | $(PY)
	@echo "Installing requirements-dev.txt into $(VENV) (a minute or two the first time)"
	$(PIP) install -r requirements-dev.txt
	$(PIP) install --no-deps -e .
	$(PIP) check
	touch $(VENV)/.stamp-lab $@

# Refresh pins: install the top-level names unpinned in a scratch venv, so pip
# resolves the newest set that works together, then write those versions back.
# Lines with a python_version marker that is false for $(PYTHON) are left alone.
# Refresh the Python 3.10 fallback lines, and only those, with
#   make pins PYTHON=python3.10 PINS_SCOPE=marked
PINS_VENV  := $(VENV)-pins
PINS_FILES := requirements.txt requirements-dev.txt requirements-hub.txt binder/requirements.txt
PINS_SCOPE ?= all

pins:
	rm -rf $(PINS_VENV)
	$(PYTHON) -m venv $(PINS_VENV)
	$(PINS_VENV)/bin/python -m pip --no-input install \
	  $$(sed -n 's/^\([A-Za-z0-9._-]*\)==.*/\1/p' requirements.txt requirements-dev.txt requirements-hub.txt | sort -u)
	$(PINS_VENV)/bin/python -m pip freeze > $(PINS_VENV)/freeze.txt
	$(PINS_VENV)/bin/python tools/pins.py $(PINS_SCOPE) $(PINS_VENV)/freeze.txt $(PINS_FILES)
	rm -rf $(PINS_VENV)
	git diff --stat -- $(PINS_FILES) || true

clean:
	rm -rf $(VENV) $(PINS_VENV) .pytest_cache .ruff_cache .hypothesis build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
