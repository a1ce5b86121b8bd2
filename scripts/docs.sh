#!/usr/bin/env bash
# make docs: the collection's documentation, checked and built.
#   scripts/docs.sh [OUT]   (default build/docs; the site is OUT/build/html/index.html)
# 1. antsibull-docs lint-collection-docs: every module, filter and role entry point documented
#    in the schema Galaxy and docs.ansible.com read.
# 2. antsibull-docs sphinx-init + its build.sh: the docs site, Sphinx warnings are errors.
# 3. tests/docs_render.py: its index and a module page opened in headless Chromium (screenshot
#    and rendered DOM) - they must show the collection's modules and the module's options.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
venv=${NETSVC_VENV:-$top/.venv}
out=${1:-$top/build/docs}
log() { printf '[docs] %s\n' "$*" >&2; }

# the checkout at its FQCN, as ansible-doc and antsibull-docs look it up
cp="$top/.cache/collections"
mkdir -p "$cp/ansible_collections/netsvc"
ln -sfn "$top" "$cp/ansible_collections/netsvc/resilience"
export ANSIBLE_COLLECTIONS_PATH=$cp PATH="$venv/bin:$PATH"

log "antsibull-docs lint-collection-docs"
antsibull-docs lint-collection-docs --plugin-docs "$cp/ansible_collections/netsvc/resilience" 2>&1 \
  | grep -v -e CryptographyDeprecationWarning -e 'from cryptography' || true
antsibull-docs lint-collection-docs --plugin-docs "$cp/ansible_collections/netsvc/resilience" >/dev/null 2>&1 \
  || { log "lint-collection-docs failed"; exit 1; }

log "building the site in $out"
rm -rf "$out"
mkdir -p "$out"
antsibull-docs sphinx-init --use-current --dest-dir "$out" netsvc.resilience >/dev/null
# Cross-references to docs.ansible.com (return values, action plugins, ansible.posix.sysctl) are
# resolved through intersphinx. No docs site is reachable here: the generated conf.py reads a
# local inventory instead, written below with exactly the labels the pages use, each pointing
# at its real docs.ansible.com page. Nothing else of conf.py changes.
"$venv/bin/python" - "$out" <<'PY'
import os, re, sys, zlib
out = sys.argv[1]
labels = [  # name, domain:role, uri (relative to the ansible devel docs), title
    ("common_return_values", "std:label", "reference_appendices/common_return_values.html#common-return-values",
     "Return Values"),
    ("action_plugins", "std:label", "plugins/action.html#action-plugins", "Action plugins"),
    ("ansible_configuration_settings", "std:label", "reference_appendices/config.html#ansible-configuration-settings",
     "Ansible Configuration Settings"),
    ("ansible_collections.ansible.posix.sysctl_module", "std:label",
     "collections/ansible/posix/sysctl_module.html#ansible-collections-ansible-posix-sysctl-module",
     "ansible.posix.sysctl module"),
]
body = "".join("%s %s -1 %s %s\n" % row for row in labels).encode()
with open(os.path.join(out, "ansible_devel.inv"), "wb") as f:
    f.write(b"# Sphinx inventory version 2\n# Project: Ansible\n# Version: devel\n"
            b"# The remainder of this file is compressed using zlib.\n" + zlib.compress(body))
conf = os.path.join(out, "conf.py")
text = open(conf).read()
text = re.sub(r"intersphinx_mapping = \{.*?\n\}", "intersphinx_mapping = {\n    'ansible_devel': "
              "('https://docs.ansible.com/projects/ansible/devel/', '../ansible_devel.inv'),\n}", text, flags=re.S)
open(conf, "w").write(text)
PY
# build.sh runs sphinx-build -W --keep-going: any warning fails the build
(cd "$out" && ./build.sh) >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; log "the site did not build cleanly"; exit 1; }
if grep -qiE '(WARNING|ERROR):' "$out/build.log"; then
  grep -iE '(WARNING|ERROR):' "$out/build.log" | grep -v CryptographyDeprecationWarning | head -20
  grep -iE '(WARNING|ERROR):' "$out/build.log" | grep -qv CryptographyDeprecationWarning && { log "warnings in the build"; exit 1; }
fi
log "built: $out/build/html/index.html"

"$venv/bin/python" "$top/tests/docs_render.py" "$out/build/html"
