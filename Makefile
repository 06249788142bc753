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

# torch is installed first, pinned, so that the package's open requirement `torch>=2.2` is
# already satisfied when the package is installed. Which build that is depends on the index:
# pip's configured index by default (PyPI: the CUDA build with its nvidia-* packages on Linux
# x86-64, the CPU build on macOS and Windows); TORCH_INDEX_URL picks another, e.g.
#   make venv TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu   (CPU only, about 200 MB)
TORCH_VERSION := 2.13.0
TORCH_INDEX_URL ?=
TORCH_INSTALL := "torch==$(TORCH_VERSION)" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))

.PHONY: venv test test-package test-chapters test-stored test-claims test-wheel test-browser book execute benchmark release clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_INSTALL)
	$(PY) -m pip install --quiet -e ".[book,test,cluster,bench]"
	rm -f $(VENV)/.installed-*
	touch $@

## every test: package, chapters in quick mode (papermill), stored outputs (nbval) under other
## numerics, every chapter's claims with a second seed, the wheel on its own, book build
test: test-package test-chapters test-stored test-claims test-wheel book test-browser

## the package's tests and every docstring example (doctests)
test-package: $(STAMP)
	$(PY) tests/fetch_real_data.py
	$(RUN_ENV) $(PY) -m pytest tests orthobook --doctest-modules -m "not notebooks and not wheel and not claims and not browser"

test-chapters: $(STAMP)
	$(RUN_ENV) $(PY) -m pytest tests -m notebooks --durations=0 --durations-min=1

# The stored outputs are re-executed under numerics that differ from the machine that stored
# them, as on another CPU: PyTorch's portable (non-vectorised) elementwise kernels and MKL's
# conditional-numerical-reproducibility mode change the rounding on any x86 CPU. nbval compares
# what is deterministic; glued values and figures are left out (tests/nbval_glue.py).
# The chapters run their networks on one thread: two notebooks at a time use both cores
# (pytest-xdist; --dist loadscope keeps each notebook's cells, in order, on one worker).
OTHER_NUMERICS := ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE
test-stored: $(STAMP)
	$(RUN_ENV) $(OTHER_NUMERICS) PYTHONPATH=tests $(PY) -m pytest --nbval $(NOTEBOOKS) -p nbval_glue \
		--nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=1800 -p no:cacheprovider \
		-n 2 --dist loadscope

## every chapter's default run with seed = 1 (seeds the stored run did not use): every claim
## check must hold
test-claims: $(STAMP)
	$(RUN_ENV) $(PY) -m pytest tests/test_chapters.py -m claims -n 2 -p no:cacheprovider \
		--durations=0 --durations-min=1

## the wheel on its own: built (sdist, then wheel), installed in a fresh venv in a temporary
## folder (torch==$(TORCH_VERSION) first), every module imported from outside the repository,
## and every book/*.ipynb run in quick mode (papermill) from a folder holding only the notebooks
test-wheel: $(STAMP)
	$(RUN_ENV) TORCH_INSTALL='$(TORCH_INSTALL)' $(PY) -m pytest tests/test_wheel.py -m wheel -p no:cacheprovider \
		--durations=0 --durations-min=1

## render the book from the stored outputs into _build/html (warnings are errors)
book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --builder html -W -n --keep-going

## the built book in headless Chromium (Playwright, Debian's chromium): console errors, images,
## MathJax, nothing but code wider than a 400 px phone, internal links and anchors, Colab buttons;
## screenshots of failing pages in _build/browser-artifacts
test-browser: book
	@test -x /usr/bin/chromium || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
		else \
			echo "test-browser needs Debian's chromium at /usr/bin/chromium: run 'sudo apt-get install chromium'" >&2; exit 1; \
		fi; }
	$(RUN_ENV) $(PY) -m pytest tests/test_browser.py -m browser -p no:cacheprovider

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

## a release: `make release VERSION=0.2.0` sets the version, pins the install cells, the README
## and the launch buttons to the tag v0.2.0, builds dist/ and prints the git commands
release: $(STAMP)
	@test -n "$(VERSION)" || { echo "usage: make release VERSION=X.Y.Z"; exit 2; }
	$(PY) scripts/release.py $(VERSION)

clean:
	rm -rf _build
