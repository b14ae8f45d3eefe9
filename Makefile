# One place for set-up. `make demo` and `make test` install on first use.
PYTHON ?= python3.11
VENV   ?= .venv
UV_VERSION := 0.13.9
STAMP  := $(VENV)/.installed
CONFIG ?= configs/demo.yaml
PYTEST_ARGS ?=

.PHONY: install demo test bench lock clean

install: $(STAMP)

$(STAMP): requirements/lock.txt requirements/nodeps.txt setup.py
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install --python $(VENV)/bin/python --no-deps -r requirements/lock.txt
	$(VENV)/bin/uv pip install --python $(VENV)/bin/python --no-deps -r requirements/nodeps.txt
	$(VENV)/bin/uv pip install --python $(VENV)/bin/python --no-deps --no-build-isolation -e .
	$(VENV)/bin/phone2dslr doctor
	touch $(STAMP)

demo: install
	$(VENV)/bin/phone2dslr run --config $(CONFIG)

test: install
	$(VENV)/bin/python -m pytest tests $(PYTEST_ARGS)

bench: install
	$(VENV)/bin/python bench/run_all.py

# Re-resolve lock.txt from requirements.in + overrides.txt (needs the registry).
lock: install
	$(VENV)/bin/uv pip compile requirements/requirements.in --override requirements/overrides.txt \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-header -o requirements/lock.txt

clean:
	rm -rf $(VENV) build *.egg-info
