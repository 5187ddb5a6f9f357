# Thin wrappers. Everything runs inside the project's own virtual environment.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo app test bench bench-quick bench-gpu clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps musicnn==0.1.0
	$(PY) -m pip install --quiet --no-deps tinysoundfont==0.3.7  # demo corpus synth (its pyaudio extra is for live playback)
	$(PY) -m pip install --quiet --no-deps pretty_midi==0.2.10  # only for the TimGM6mb.sf2 SoundFont it ships
	$(PY) -m pip install --quiet --no-deps -e .  # the `genrelens` command (= python -m training)
	touch $(STAMP)

demo: setup
	$(PY) -m training demo
	$(MAKE) app

app: setup
	$(VENV)/bin/streamlit run server.py  # app.py behind its Content-Security-Policy

test: setup
	$(PY) -m pytest -q

# Every figure beside its baseline measured in the same run; QUICK=1 (or bench-quick): minutes.
bench: setup
	$(PY) -m benchmarks $(if $(QUICK),--quick)

bench-quick: setup
	$(PY) -m benchmarks --quick

# Each step on CUDA beside the CPU (under 8 minutes on one datacenter GPU); without CUDA: exit 2.
bench-gpu: setup
	$(PY) -m benchmarks gpu

clean:
	rm -rf $(VENV) data/genrelens.duckdb data/demo data/cache
