# orthobook: `make book` renders the book, `make test` runs every test.
# Both create (or reuse) the virtual environment $(VENV) and install what they need.

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
CHAPTERS := $(sort $(wildcard book/[0-9][0-9]_*.md) $(wildcard book/data_and_tasks.md))
NOTEBOOKS := $(CHAPTERS:.md=.ipynb)

# Stored outputs are produced and checked under the same conditions: no progress bars
# (their timings would differ), two threads (the book's CPU run).
RUN_ENV := TQDM_DISABLE=1 OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 PYDEVD_DISABLE_FILE_VALIDATION=1

.PHONY: venv test test-package test-chapters test-stored book execute benchmark clean

venv: $(STAMP)

# The local CPU wheel of torch is installed first so that the open requirement `torch>=2.2`
# is already satisfied (an unpinned install would pull a multi-GB CUDA build).
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[book,test]"
	rm -f $(VENV)/.installed-*
	touch $@

## every test: package, chapters in quick mode (papermill), stored outputs (nbval), book build
test: test-package test-chapters test-stored book

## the package's tests and every docstring example (doctests)
test-package: $(STAMP)
	$(PY) tests/fetch_real_data.py
	$(RUN_ENV) $(PY) -m pytest tests orthobook --doctest-modules -m "not notebooks"

test-chapters: $(STAMP)
	$(RUN_ENV) $(PY) -m pytest tests -m notebooks --durations=0 --durations-min=1

test-stored: $(STAMP)
	$(RUN_ENV) $(PY) -m pytest --nbval $(NOTEBOOKS) --nbval-sanitize-with tests/nbval_sanitize.cfg \
		--nbval-cell-timeout=1800 -p no:cacheprovider

## render the book from the stored outputs into _build/html (warnings are errors)
book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --builder html -W -n --keep-going

## regenerate a chapter's .ipynb from its .md and store the outputs of its default run:
## `make execute` (all) or `make execute CHAPTERS=book/01_gradient_products.md`
execute: $(STAMP)
	@for md in $(CHAPTERS); do \
		echo "executing $$md"; \
		$(RUN_ENV) $(VENV)/bin/jupytext --to ipynb --execute $$md || exit 1; \
	done

## speed ratios against plain torch.nn.RNN, measured in the same run
benchmark: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf _build
