"""The house rules that keep jitaccess easy to change, checked on the source (AST, no imports).

- `api/` and `policy/` are pure: they import nothing that talks to Kubernetes or Google, so every
  rule can be tested with plain data.
- Packages depend in one direction: api <- policy <- controller; iam beside policy (it knows the
  binding format, not the lifecycle). The sandbox and the emulator are a distribution of their
  own (sandbox/): the product imports them nowhere but in the `jitaccess sandbox` hand-off.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "operator" / "jitaccess"
PURE = {"api", "policy"}
TALKERS = ("kopf", "kubernetes", "google", "aiohttp", "grpc", "urllib3", "requests")
# Who may import whom (package -> the jitaccess packages it may use).
ALLOWED = {
    "api": set(),
    "policy": {"api"},
    "iam": {"api", "stats"},
    "stats": set(),
    "clock": set(),
    "controller": {"api", "policy", "iam", "clock", "stats", "kubeconfig"},
    # The web console: the pure rules, and what kubectl jit shows an approver (the same judgement).
    "console": {"api", "policy", "kubectl_review", "kubectl_commands", "kubeconfig"},
    "kubeconfig": set(),
    "migrate": {"api", "iam"},
    "kubectl_jit": {
        "api",
        "policy",
        "kubectl_review",
        "kubectl_commands",
        "kubectl_output",
        "kubectl_completion",
    },
    "kubectl_commands": {"api", "policy", "kubectl_review", "kubectl_output"},
    "kubectl_completion": {"api", "kubectl_commands", "kubectl_output"},
    "kubectl_output": {"api", "kubectl_review"},
    "kubectl_review": {"api", "policy"},
    "run_flags": set(),
}


def imports() -> dict[tuple[str, str], set[str]]:
    """(package, file) -> every module it imports."""
    found: dict[tuple[str, str], set[str]] = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts
        package = parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")
        modules: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module)
            elif isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
        found[package, str(path.relative_to(ROOT))] = modules
    return found


def test_the_pure_core_talks_to_nothing():
    offending = [
        f"{file}: {module}"
        for (package, file), modules in imports().items()
        if package in PURE
        for module in modules
        if module.split(".")[0] in TALKERS
    ]
    assert not offending, offending


def test_packages_depend_in_one_direction():
    offending = []
    for (package, file), modules in imports().items():
        if package not in ALLOWED:
            continue  # cli, sandbox: the top, which may use anything
        for module in modules:
            if module.startswith("jitaccess."):
                used = module.split(".")[1]
                if used != package and used not in ALLOWED[package]:
                    offending.append(f"{file} imports {module}")
    assert not offending, offending


def test_there_is_no_cycle_between_packages():
    edges: dict[str, set[str]] = {}
    for (package, _), modules in imports().items():
        for module in modules:
            if module.startswith("jitaccess.") and module.split(".")[1] != package:
                edges.setdefault(package, set()).add(module.split(".")[1])
    for a, b in itertools.permutations(edges, 2):
        assert not (b in edges.get(a, ()) and a in edges.get(b, ())), f"{a} <-> {b}"

    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(
            n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in edges.get(start, ())
        )

    cyclic = [package for package in edges if reaches(package, package)]
    assert not cyclic, cyclic


def test_no_function_is_too_long_to_read_at_once():
    """About a screen: a longer function is split by purpose (the limit is ~60 lines)."""
    long = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1 if node.end_lineno else 0
                if lines > 65:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_the_product_does_not_ship_or_import_the_sandbox():
    assert not (ROOT / "sandbox").exists() and not (ROOT / "emulator").exists()
    offending = [
        f"{file}: {module}"
        for (package, file), modules in imports().items()
        if package != "cli"
        for module in modules
        if module.split(".")[0] in ("jitaccess_sandbox", "jitaccess_emulator")
    ]
    assert not offending, offending
