"""The package's imports run one way, and the light entry points stay light.

Layers, lowest first: the foundation (errors, I/O, the component registry, plugin loading,
hook specs, the plugin contracts), ``sparse``, ``engine`` (with the models, datasets and the
batched engine), the suite and its executors, leaderboards and analyses, and on top the
command line, the public API, the built-in plugins and the conformance kit. A module may
import its own layer or a lower one, never a higher one; nothing imports in a cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dstbench"

#: Top-level module or folder of dstbench -> layer (higher may import lower).
LAYERS: dict[str, int] = {
    "_version": 0,
    "errors": 0,
    "io": 0,
    "contracts": 1,
    "registry": 1,
    "hookspecs": 1,
    "plugins": 1,
    "resolve": 1,
    "sparse": 2,
    "models": 3,
    "datasets": 3,
    "engine": 3,
    "batched": 4,
    "sparsetrain": 4,
    "labels": 5,
    "preflight": 5,
    "suite": 5,
    "leaderboard": 6,
    "analysis": 7,
    "api": 8,
    "hookdocs": 8,
    "conformance": 8,
    "testing": 9,
    "cli": 9,
    "builtin": 9,
    "__init__": 9,
    "__main__": 10,
}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported dstbench module, only under TYPE_CHECKING) for every import in ``path``."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, bool]] = []
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in ast.walk(node):
                typing_only.add(id(child))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module]) if module else ".".join(base)
            if module == "dstbench":  # from dstbench import x: x may be a submodule
                found += [(f"dstbench.{a.name}", id(node) in typing_only) for a in node.names]
            elif module.startswith("dstbench."):
                found.append((module, id(node) in typing_only))
        elif isinstance(node, ast.Import):
            found += [
                (a.name, id(node) in typing_only)
                for a in node.names
                if a.name.startswith("dstbench.")
            ]
    return found


def _top(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def _own_top(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def test_every_module_has_a_layer():
    tops = {_own_top(p) for p in PACKAGE.rglob("*.py")}
    assert tops <= set(LAYERS), sorted(tops - set(LAYERS))


def test_imports_run_one_way():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = _own_top(path)
        for module, _typing in _imports(path):
            target = _top(module)
            if target in LAYERS and LAYERS[target] > LAYERS[own]:
                upward.append(f"{path.relative_to(PACKAGE.parent)} imports {module}")
    assert not upward, "\n".join(upward)


def test_the_contracts_import_nothing_of_the_engine():
    for path in (PACKAGE / "contracts").rglob("*.py"):
        for module, _ in _imports(path):
            assert _top(module) in ("contracts", "errors", "plugins"), (path, module)
    text = (PACKAGE / "hookspecs.py").read_text()
    assert {m for m, _ in _imports(PACKAGE / "hookspecs.py")} == {"dstbench.contracts"}, text[:0]


def test_no_import_cycles_between_folders():
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        own = _own_top(path)
        for module, typing_only in _imports(path):
            target = _top(module)
            if target != own and not typing_only:
                graph.setdefault(own, set()).add(target)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(a for a in graph for b in graph[a] if reaches(b, a, {b}))
    assert not cycles, cycles


@pytest.mark.parametrize(
    "code",
    [
        "import dstbench",
        "import dstbench.contracts, dstbench.hookspecs",
        "import dstbench.cli, dstbench.cli.commands",
    ],
)
def test_light_entry_points_do_not_load_torch(code):
    probe = f"{code}; import sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_help_and_version_do_not_load_torch():
    probe = (
        "import sys\n"
        "from dstbench.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_help_lists_every_command_without_importing_them(capsys):
    from dstbench.cli import main
    from dstbench.cli.commands import COMMANDS

    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)
    assert "95% intervals" in out  # help text with a percent sign is shown as written


def test_one_table_of_kinds_drives_registry_hooks_and_listings(registry):
    import dataclasses

    from dstbench import hookspecs
    from dstbench.contracts.components import KINDS
    from dstbench.engine.provenance import SPEC_KEY_KINDS
    from dstbench.engine.spec import FIELDS
    from dstbench.registry import Registry

    assert [f.name for f in dataclasses.fields(Registry)] == [k.plural for k in KINDS]
    hooks = {n for n in dir(hookspecs) if n.startswith("dstbench_register_")}
    assert hooks == {k.hook for k in KINDS}
    assert list(registry.describe()) == [k.plural for k in KINDS]
    # every spec key that names a component is known to provenance, with its kind
    component_keys = {k for k, f in FIELDS.items() if f.type.startswith("component")}
    assert set(SPEC_KEY_KINDS) == component_keys
    assert all(FIELDS[k].type.split(":")[1] == SPEC_KEY_KINDS[k] for k in component_keys)
