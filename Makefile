# Entry points on a fresh machine: `make demo`, `make demo-images` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TORCH  := torch==2.13.0

.PHONY: demo demo-images test lint install install-test install-vision clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test]'
	touch $@

$(VENV)/.installed-vision: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[vision]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test
install-vision: $(VENV)/.installed-vision

demo: $(VENV)/.installed
	$(VENV)/bin/gzsl train gsmflow demo --preset demo --out runs/demo

# Bring your own images, end to end on the CPU (docs/bring-your-own-images.md): SYNTHETIC
# shapes x colours images and a RANDOM-weight backbone (nothing can be downloaded here).
DEMO_IMAGES := runs/demo-images
GZSL        := $(VENV)/bin/gzsl
demo-images: $(VENV)/.installed-vision
	rm -rf $(DEMO_IMAGES)
	$(PY) -m gzsl.features.shapes $(DEMO_IMAGES)
	$(GZSL) features extract $(DEMO_IMAGES)/images $(DEMO_IMAGES)/features.npz \
	    --backbone $(DEMO_IMAGES)/backbone --resize 64 --crop 64 --device cpu \
	    --name SYNTHETIC-shapes
	$(GZSL) features classes $(DEMO_IMAGES)/classes.npz \
	    --attributes $(DEMO_IMAGES)/attributes.csv --classes-of $(DEMO_IMAGES)/features.npz
	$(GZSL) data make $(DEMO_IMAGES)/features.npz $(DEMO_IMAGES)/classes.npz \
	    $(DEMO_IMAGES)/SYNTHETIC-shapes.npz --unseen $(DEMO_IMAGES)/unseen.txt --val-count 2
	$(GZSL) train gaussian SYNTHETIC-shapes --root $(DEMO_IMAGES)/SYNTHETIC-shapes.npz \
	    --preset demo --selection val --device cpu --out $(DEMO_IMAGES)/run \
	    --set method.ridge=0.1 --set evaluation.classifier_lr=0.01 \
	    --set evaluation.classifier_epochs=50
	$(GZSL) predict $(DEMO_IMAGES)/run $(DEMO_IMAGES)/new_images \
	    --out $(DEMO_IMAGES)/predictions.csv --top 3
	@echo "SYNTHETIC demo done: drawn shapes, random-weight backbone; predictions of the" \
	    "new SYNTHETIC images (true class in each file name) in $(DEMO_IMAGES)/predictions.csv"

test: $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
