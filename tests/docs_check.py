"""The docs and the code agree (part of make test's lint step).

  python tests/docs_check.py

- README: at most 250 lines; the two set-up commands first; the sections of a certified
  collection's README; only full URLs (Galaxy and Automation Hub render it outside the repo).
- Every role has a README.md, and its meta platforms are the ones docs/platforms.md lists.
- Every role variable set in defaults/main.yml is specified in meta/argument_specs.yml (entry
  point main) and vice versa, with the same default where the spec gives one, inside its
  choices.
- galaxy.yml's version is released in changelogs/changelog.yaml.
- docs/architecture.md's picture and import table match the imports of plugins/.
Prints every mismatch; exits 1 on any.
"""
import ast
import glob
import os
import re
import sys

import yaml

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTIONS = ["Description", "Requirements", "Installation", "Use cases", "What it changes on a host", "Testing",
            "Contributing", "Support", "Release notes", "License"]
# docs/platforms.md's rows -> (galaxy platform name, version)
PLATFORM_ROWS = {
    "CentOS/RHEL 7": ("EL", "7"), "RHEL 8": ("EL", "8"), "RHEL 9": ("EL", "9"), "RHEL 10": ("EL", "10"),
    "Debian 11": ("Debian", "bullseye"), "Debian 12": ("Debian", "bookworm"), "Debian 13": ("Debian", "trixie"),
    "Ubuntu 20.04": ("Ubuntu", "focal"), "Ubuntu 22.04": ("Ubuntu", "jammy"), "Ubuntu 24.04": ("Ubuntu", "noble"),
}
# variables a role leaves unset on purpose (the spec says what happens then)
# unset: the module's own default applies (one copy of it)
UNSET_ON_PURPOSE = {"harden_restart_kernel_profile", "harden_restart_extra_sysctls", "prestart_cleanup_hook_path",
                    "kernel_tuning_sysctl_file", "prestart_cleanup_sysctl_file"}


def read(path):
    with open(os.path.join(TOP, path)) as f:
        return f.read()


def check_readme(problems):
    text = read("README.md")
    lines = text.splitlines()
    if len(lines) > 250:
        problems.append("README.md has %d lines (at most 250)" % len(lines))
    block = text.split("```")[1] if "```" in text else ""
    commands = [line.split("#")[0].strip() for line in block.splitlines()[1:] if line.split("#")[0].strip()]
    if commands[:2] != ["make demo", "make test"]:
        problems.append("README.md's first code block must start with make demo and make test, has %s" % commands[:2])
    headings = [line[3:].strip() for line in lines if line.startswith("## ")]
    for name in SECTIONS:
        if name not in headings:
            problems.append("README.md has no section %r" % name)
    for target in re.findall(r"\]\(([^)]*)\)", text):
        if not target.startswith(("https://", "http://")):
            problems.append("README.md links to %r: use a full URL" % target)


def platforms_from_docs():
    rows = set()
    for line in read("docs/platforms.md").splitlines():
        cell = line.split("|")[1].strip() if line.startswith("|") else ""
        if cell in PLATFORM_ROWS:
            rows.add(PLATFORM_ROWS[cell])
    return rows


def check_roles(problems):
    want = platforms_from_docs()
    if len(want) != len(PLATFORM_ROWS):
        problems.append("docs/platforms.md lists %d of the %d platforms" % (len(want), len(PLATFORM_ROWS)))
    for role_dir in sorted(glob.glob(os.path.join(TOP, "roles", "*"))):
        role = os.path.basename(role_dir)
        if not os.path.exists(os.path.join(role_dir, "README.md")):
            problems.append("roles/%s has no README.md" % role)
        meta = yaml.safe_load(read("roles/%s/meta/main.yml" % role))
        have = {(p["name"], str(v)) for p in meta["galaxy_info"]["platforms"] for v in p["versions"]}
        if have != want:
            problems.append("roles/%s/meta/main.yml platforms %s, docs/platforms.md %s"
                            % (role, sorted(have - want), sorted(want - have)))
        defaults = yaml.safe_load(read("roles/%s/defaults/main.yml" % role)) or {}
        spec = yaml.safe_load(read("roles/%s/meta/argument_specs.yml" % role))["argument_specs"]["main"]["options"]
        for name in sorted(set(defaults) - set(spec)):
            problems.append("roles/%s: %s is set in defaults but not in the argument spec" % (role, name))
        for name, opt in sorted(spec.items()):
            if name not in defaults and name not in UNSET_ON_PURPOSE and not opt.get("required"):
                problems.append("roles/%s: %s is specified but has no default in defaults/main.yml" % (role, name))
            if name in defaults and "default" in opt and "{{" not in str(defaults[name]) \
                    and opt["default"] != defaults[name]:
                problems.append("roles/%s: %s defaults to %r, its spec says %r" % (role, name, defaults[name],
                                                                                   opt["default"]))
            if name in defaults and opt.get("choices") and "{{" not in str(defaults[name]) \
                    and defaults[name] not in opt["choices"]:
                problems.append("roles/%s: %s defaults to %r, not one of %s"
                                % (role, name, defaults[name], opt["choices"]))


def check_release(problems):
    version = yaml.safe_load(read("galaxy.yml"))["version"]
    releases = (yaml.safe_load(read("changelogs/changelog.yaml")) or {}).get("releases") or {}
    if str(version) not in releases:
        problems.append("galaxy.yml's version %s is not released in changelogs/changelog.yaml (%s)"
                        % (version, sorted(releases)))


# concerns that may drive another concern (docs/architecture.md says why)
CONCERN_EDGES = {("_undo", "_supervisord_program"), ("_service_restart_policy", "_supervisord_program"),
                 ("_service_restart_policy", "_preload_switch")}


MODULE_UTILS = "ansible_collections.netsvc.resilience.plugins.module_utils"
# the layer each folder of plugins/module_utils holds (the top level: the composer)
LAYER_DIRS = {"": "composer", "concerns": "concerns", "primitives": "primitives"}


def module_utils_imports(path):
    """The module_utils files a Python file imports: ``from ...module_utils[.LAYER] import _x``
    and ``from ...module_utils.LAYER._x import name`` both count as _x."""
    with open(path) as f:
        tree = ast.parse(f.read())
    found = set()
    for node in ast.walk(tree):
        mod = getattr(node, "module", None) or ""
        if not isinstance(node, ast.ImportFrom) or not mod.startswith(MODULE_UTILS):
            continue
        last = mod.rsplit(".", 1)[-1]
        found |= {last} if last.startswith("_") else {alias.name for alias in node.names}
    return found


def module_utils_files():
    """{name: (its path under plugins/, the layer its folder says)} of every module_utils file."""
    out = {}
    for folder, layer in LAYER_DIRS.items():
        for path in sorted(glob.glob(os.path.join(TOP, "plugins", "module_utils", folder, "*.py"))):
            name = os.path.basename(path)[:-3]
            if name != "__init__":
                out[name] = ("/".join(x for x in ("module_utils", folder, name + ".py") if x), layer)
    return out


def check_architecture(problems):
    text = read("docs/architecture.md")
    table = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("| ") else []
        if len(cells) == 2 and cells[0].endswith(".py") and "/" in cells[0]:
            table[cells[0]] = set() if cells[1] == "-" else {n.strip() for n in cells[1].split(",")}
    real = {}
    for sub in ("modules", "action", "plugin_utils", "filter"):
        for path in sorted(glob.glob(os.path.join(TOP, "plugins", sub, "*.py"))):
            if os.path.basename(path) != "__init__.py":
                real["%s/%s" % (sub, os.path.basename(path))] = module_utils_imports(path)
    files = module_utils_files()
    for rel, _layer in files.values():
        real[rel] = module_utils_imports(os.path.join(TOP, "plugins", rel))
    for name in sorted(set(table) | set(real)):
        if name not in real:
            problems.append("docs/architecture.md lists %s, which does not exist" % name)
        elif name not in table:
            problems.append("docs/architecture.md does not list plugins/%s" % name)
        elif table[name] != real[name]:
            problems.append("docs/architecture.md: plugins/%s imports %s, the page says %s"
                            % (name, sorted(real[name]), sorted(table[name])))
    # the picture's layer rows: every module, concern and primitive in exactly one
    rows = {}
    for line in text.split("```")[1].splitlines() if "```" in text else []:
        head, sep, rest = line.strip().partition(":")
        if sep and head in ("modules", "concerns", "composer", "primitives"):
            rows[head] = [w for w in re.findall(r"[_a-z][_a-z0-9]*", rest) if w.startswith("_") or head == "modules"]
    modules = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(TOP, "plugins", "modules", "*.py"))}
    utils = set(files)
    concerns, primitives = set(rows.get("concerns", [])), set(rows.get("primitives", []))
    composer = set(rows.get("composer", []))
    if set(rows.get("modules", [])) != modules:
        problems.append("docs/architecture.md's modules row %s, plugins/modules %s"
                        % (rows.get("modules"), sorted(modules)))
    layers = [concerns, composer, primitives]
    twice = {n for i, a in enumerate(layers) for b in layers[i + 1:] for n in a & b}
    if concerns | composer | primitives != utils or twice:
        problems.append("docs/architecture.md's concern, composer and primitive rows do not cover module_utils "
                        "once each: %s" % sorted(utils ^ (concerns | composer | primitives) | twice))
    for name in sorted(modules):  # the harden module's own is the composer
        imports = real.get("modules/%s.py" % name, set())
        if imports != {"_" + name, "_module"} or "_" + name not in concerns | composer:
            problems.append("plugins/modules/%s.py must import its own concern _%s and _module only, imports %s"
                            % (name, name, sorted(imports)))
    for name in sorted(utils):
        layer = files[name][1]
        if name not in rows.get(layer, []):
            problems.append("plugins/%s is in the %s folder, but the page's %s row does not list it"
                            % (files[name][0], layer, layer))
        for dep in sorted(real.get(files[name][0], set()) & concerns):
            if name in primitives or (name not in composer and (name, dep) not in CONCERN_EDGES):
                problems.append("plugins/%s imports the concern %s: not a layer the page allows"
                                % (files[name][0], dep))


# what a molecule platform may say itself; the container flags are scripts/testbed.sh run's
PLATFORM_KEYS = {"name", "image", "groups", "command"}


def check_molecule(problems):
    for path in sorted(glob.glob(os.path.join(TOP, "molecule", "*", "molecule.yml"))):
        for platform in (yaml.safe_load(read(os.path.relpath(path, TOP))) or {}).get("platforms") or []:
            extra = sorted(set(platform) - PLATFORM_KEYS)
            if extra:
                problems.append("%s: platform %s sets %s; container flags come from scripts/testbed.sh run "
                                "(molecule/_shared/create.yml)" % (os.path.relpath(path, TOP), platform.get("name"),
                                                                   ", ".join(extra)))


def main():
    problems = []
    check_readme(problems)
    check_roles(problems)
    check_release(problems)
    check_architecture(problems)
    check_molecule(problems)
    for p in problems:
        print("[docs-check] " + p)
    print("[docs-check] %s" % ("%d problem(s)" % len(problems) if problems else "README, roles and release agree"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
