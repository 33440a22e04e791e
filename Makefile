# The two commands of the Quickstart are `make demo` and `make test`; every target creates .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

.PHONY: install demo sandbox test test-envtest soak lint format bench clean lock image release

$(STAMP): pyproject.toml sandbox/pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' -e ./sandbox
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/jitaccess sandbox --demo --state-dir .sandbox-demo

sandbox: $(STAMP)
	$(BIN)/jitaccess sandbox --state-dir .sandbox

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The integration tests on a real kube-apiserver + etcd (binaries from setup-envtest, see README).
test-envtest: $(STAMP)
	@test -n "$(KUBEBUILDER_ASSETS)" || { echo "set KUBEBUILDER_ASSETS to a folder with kube-apiserver and etcd (setup-envtest use -p path 1.33.x)"; exit 2; }
	KUBEBUILDER_ASSETS="$(KUBEBUILDER_ASSETS)" $(BIN)/python -m pytest -q tests/integration

# The long variant of the crash chaos test: 900 requests, 100 SIGKILLs (a few minutes more).
soak: $(STAMP)
	JITACCESS_SOAK=1 $(BIN)/python -m pytest -q tests/integration/test_chaos.py

lint: $(STAMP)
	$(BIN)/ruff check operator sandbox tests benchmarks
	$(BIN)/ruff format --check operator sandbox tests benchmarks

# make bench [SCENARIOS="burst-500-1 steady-50"]: figures in the terminal and benchmarks/results/.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py --scenarios "$(SCENARIOS)"

format: $(STAMP)
	$(BIN)/ruff format operator sandbox tests benchmarks
	$(BIN)/ruff check --fix operator sandbox tests benchmarks

# The image's lock file: every runtime dependency, transitive ones too, pinned with its hashes.
lock: $(STAMP)
	$(BIN)/pip install --quiet pip-tools==7.6.2
	cd requirements && ../$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url \
		--no-emit-find-links --output-file operator.txt ../pyproject.toml

image:
	docker build -t jitaccess:$(VERSION) .

# One version's artefacts in dist/: install-VERSION.yaml (kubectl apply -f), the wheels, the
# krew archive of kubectl jit and its manifest (krew-jit.yaml, with the archive's sha256).
release: $(STAMP)
	rm -rf dist && mkdir -p dist/krew
	$(BIN)/kubectl kustomize manifests > dist/install-$(VERSION).yaml
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir dist . ./sandbox ./kubectl-jit
	cp LICENSE dist/kubectl_jit-$(VERSION)-py3-none-any.whl dist/krew/
	cp kubectl-jit/launcher.sh dist/krew/kubectl-jit && cp kubectl-jit/launcher.sh dist/krew/kubectl_complete-jit
	tar -czf dist/kubectl-jit-$(VERSION).tar.gz -C dist/krew .
	sed -e '/# PLACEHOLDER/d' -e "s/^\(      sha256: \).*/\1\"$$(sha256sum dist/kubectl-jit-$(VERSION).tar.gz | cut -d' ' -f1)\"/" \
		kubectl-jit/krew.yaml > dist/krew-jit.yaml
	@echo "dist/ is ready; tag it: git tag -a v$(VERSION) -m 'jitaccess $(VERSION)'"

clean:
	rm -rf $(VENV) .sandbox .sandbox-demo .pytest_cache dist
