# cgaa: `make demo` and `make test` each create .venv and install what they need.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.cgaa-installed
DEMO   ?= demo-run

.PHONY: demo test install clean default-model sevennet-data sevennet-model sevennet-finetune sevennet-compositions

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[test,openmmml]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q --durations=15

demo: $(STAMP)
	$(PY) -m cgaa demo --out $(DEMO)

clean:
	rm -rf $(VENV) $(DEMO) build *.egg-info

# Rebuild the shipped default model (teacher data → training → deploy → model card); ~10 h on 2 CPU cores
# (four trainings, 2 x 70 + 2 x 15 ps of active-learning NPT MD, 2 x 2 x 70 ps of teacher and CGAA NPT MD);
# resumable: run it again after an interruption.
default-model: $(STAMP)
	bash forcefields/models/make_default_model.sh

# The quantum-level model forcefields/models/lipf6-ec-emc-1m-sevennet.pt from the shipped SevenNet-0 + D3(BJ)
# frames: the final training (lipf6-ec-emc-1m-sevennet.train.yaml, ~3 h on two cores), deployment, reference-energy
# refit, evaluation and card in build/sevennet-model/ (not copied over the shipped file); resumable. Earlier stages
# and active-learning MD run only for rounds missing from forcefields/data/sevennet (labelling needs ".[sevenn]").
sevennet-model: $(STAMP)
	CGAA=$(VENV)/bin/cgaa PYTHON=$(PY) bash forcefields/models/make_sevennet_model.sh

# Its data from scratch: sampling and SevenNet-0 + D3 / GFN2-xTB labels (~1.5 h on one core); needs the
# optional teachers, installed here into the environment (they run on the pinned torch); resumable.
sevennet-data: $(STAMP)
	$(PY) -m pip install -e ".[test,openmmml,sevenn,xtb]"
	CGAA=$(VENV)/bin/cgaa bash forcefields/models/make_sevennet_data.sh

# Composition anchors for it: SevenNet-0 + D3 labels of 0.5 M, 2 M and EC:EMC 1:1 boxes (the shipped
# forcefields/data/sevennet/comp-*.xyz.xz, or made here: needs ".[sevenn]"); resumable.
sevennet-compositions: $(STAMP)
	(for c in 0.5m 2m ecemc11; do [ -s forcefields/data/sevennet/comp-$$c.xyz.xz ] || exit 1; done) \
	    || $(PY) -m pip install -e ".[test,openmmml,sevenn,xtb]"
	CGAA=$(VENV)/bin/cgaa bash forcefields/models/make_sevennet_compositions.sh

# Forgetting-aware fine-tuning of the quantum-level model to 1 M LiPF6 in EC:DMC (plain vs replay + EWC;
# the table of docs/training.md); uses the shipped EC:DMC labels, or makes them (needs ".[sevenn]",
# installed here); resumable; work in build/sevennet-finetune/.
sevennet-finetune: $(STAMP)
	[ -s forcefields/data/sevennet/ecdmc-train.xyz.xz ] && [ -s forcefields/data/sevennet/ecdmc-test.xyz.xz ] \
	    || $(PY) -m pip install -e ".[test,openmmml,sevenn,xtb]"
	CGAA=$(VENV)/bin/cgaa PYTHON=$(PY) bash forcefields/models/make_sevennet_finetune.sh
