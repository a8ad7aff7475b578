# Every target creates (or reuses) the virtual environment and installs what it needs by itself.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ifrvp-installed
PROFILE ?= quick
# Passed to the workbook runner as they are, e.g. ARGS="-p dataset=cityscapes -p data_root=/data/cityscapes"
# (`-p NAME=VALUE` sets a notebook parameter; --only, --work_dir, --timeout work too).
ARGS ?=

.PHONY: workbook ablations test install kernel lab bench clean-reports

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(PY) -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
	$(PY) -m ipykernel install --sys-prefix --name ifrvp --display-name "IFRVP (Python 3)" >/dev/null
	-git rev-parse --git-dir >/dev/null 2>&1 && git config core.hooksPath .githooks
	touch $(STAMP)

kernel: $(STAMP)

workbook: $(STAMP)
	$(PY) -m ifrvp_core.workbook --profile $(PROFILE) $(ARGS)

ablations: $(STAMP)
	$(PY) -m ifrvp_core.workbook --profile $(PROFILE) --only 06 $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --KernelManager.transport_encryption=auto notebooks/

bench: $(STAMP)
	$(PY) benchmarks/model_speed.py
	$(PY) benchmarks/data_throughput.py
	$(PY) benchmarks/train_throughput.py

clean-reports:
	rm -rf reports/*.html reports/executed reports/figures
