# `make demo` and `make test` are the two commands in README: each sets up .venv on first use.
# The install resolves exactly the versions in requirements/constraints.txt (`make lock` rewrites it).
# TORCH=cpu installs PyTorch's CPU-only wheels from PyTorch's index instead of PyPI's CUDA build.
VENV ?= .venv
PYTHON ?= python3
TORCH ?= cuda
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONSTRAINTS := requirements/constraints.txt
TORCH_INDEX_cuda :=
TORCH_INDEX_cpu := --extra-index-url https://download.pytorch.org/whl/cpu
TORCH_INDEX := $(TORCH_INDEX_$(TORCH))

.PHONY: install demo test bench lock

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test "$(TORCH)" = cuda -o "$(TORCH)" = cpu || { echo "TORCH must be cuda or cpu, got '$(TORCH)'"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_INDEX) -c $(CONSTRAINTS) -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/world-gym evaluate --policy replay --policy random --episodes 4 --num-envs 4 --videos 1 --out outputs/evaluation

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/speed.py

# Re-resolve every dependency (all extras, every Python >= 3.10) into the constraints file.
lock: $(STAMP)
	$(PY) -m pip install --quiet "uv>=0.5"
	$(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.10 --extra dev --extra docs \
		--extra teleop --extra eval --quiet -o $(CONSTRAINTS)

.PHONY: docs
docs: $(STAMP)
	$(PY) -m mkdocs build --strict --site-dir site
