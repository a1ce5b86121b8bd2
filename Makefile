# netsvc.resilience — the two commands a newcomer runs (see README):
#   make demo   the main job on an embedded default: a local container fleet
#   make test   every test: lint, sanity, units, build, molecule
.PHONY: demo demo-clean test venv testbed bench docs lint

demo:
	scripts/demo.sh up

demo-clean:
	scripts/demo.sh down

test:
	scripts/test.sh

venv:
	scripts/venv.sh

testbed:
	scripts/testbed.sh all

bench:
	scripts/bench.sh $(PART)

# the docs site (antsibull-docs + Sphinx) in build/docs, checked in headless Chromium
docs:
	scripts/docs.sh

lint:
	scripts/test.sh venv lint
