# Every target installs what it needs first, so a fresh clone needs no manual step.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev
OUT    ?= out
SAMPLES := $(OUT)/samples

.PHONY: setup setup-gui setup-train test lint bench samples dataset annotate train clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@scripts/ensure-egl.sh
	@scripts/ensure-fonts.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,train]'
	@touch $@

setup-gui: $(STAMP)
	@scripts/ensure-fonts.sh
	$(PY) -m pip install -q -e '.[gui,dev]'
	@scripts/ensure-qt.sh $(PY)

setup-train: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check mmdrender annotate pipeline tests bench

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

samples: $(STAMP)
	$(VENV)/bin/mmdrender samples $(SAMPLES)

# The main job on the bundled samples: render a small train/validation/test
# dataset from models_index.csv, verify it, and draw a preview. Rerunning keeps
# finished shards. EXAMPLES and WORKERS (default: one per core) can be set on
# the command line.
EXAMPLES ?= 32
WORKERS  ?=
DATASET  := $(OUT)/dataset
dataset: samples
	$(VENV)/bin/pipeline dataset --index models_index.csv --root $(SAMPLES) --out $(DATASET) \
		--examples-per-model $(EXAMPLES) $(if $(WORKERS),--workers $(WORKERS))
	$(VENV)/bin/pipeline verify $(DATASET)
	$(VENV)/bin/pipeline preview $(DATASET) -o $(DATASET)/preview.png
	@echo "Sample characters: $(SAMPLES)/   dataset: $(DATASET)/   preview: $(DATASET)/preview.png"

# The review window on the bundled samples' index (needs a display).
annotate: setup-gui samples
	$(VENV)/bin/annotate gui --index models_index.csv --root $(SAMPLES)

# A short CPU demonstration of the three networks on the demo dataset (small
# channels and few steps: it shows the loop works end to end, not a trained
# model), ending with each network's RMSE/SSIM and image grid.
RUNS       ?= $(OUT)/runs
TRAIN_ARGS ?= --steps 40 --batch-size 4 --channels 16 --res-blocks 2 --val-every 20
train: dataset
	$(VENV)/bin/pipeline train morpher --data $(DATASET) --run $(RUNS)/morpher $(TRAIN_ARGS)
	$(VENV)/bin/pipeline train rotator --data $(DATASET) --run $(RUNS)/rotator $(TRAIN_ARGS)
	$(VENV)/bin/pipeline train combiner --data $(DATASET) --run $(RUNS)/combiner \
		--rotator $(RUNS)/rotator $(TRAIN_ARGS)
	@for n in morpher rotator combiner; do \
		$(VENV)/bin/pipeline eval --data $(DATASET) --run $(RUNS)/$$n || exit 1; done
	@echo "Runs, eval.json and eval_grid.png: $(RUNS)/"

clean:
	rm -rf $(OUT) .pytest_cache
