"""The import graph a newcomer relies on: no module imports another that (directly or through
others) imports it back, and pages reach model code only through the streamlit-free facade
`genre_core.app`. Imports inside functions count too: a lazy import only hides a circle
until the function runs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What a page may not import itself (the facade genre_core.app wraps them).
PAGE_FORBIDDEN = ("torch", "genre_core.store", "genre_core.audio", "genre_core.live")


def module_files() -> dict[str, Path]:
    """Every module of genre_core, training and the app, by dotted name."""
    files = {}
    for package in ("genre_core", "training"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for path in [ROOT / "app.py", ROOT / "page_frame.py", *sorted((ROOT / "pages").glob("*.py"))]:
        files[".".join(path.relative_to(ROOT).with_suffix("").parts)] = path
    return files


def imported_names(path: Path, name: str, is_package: bool) -> set[str]:
    """Dotted names `path` imports anywhere in it (module level or inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    graph = {}
    for name, path in files.items():
        targets = set()
        for imported in imported_names(path, name, path.name == "__init__.py"):
            # `from a.b import c` imports a.b.c when that is a module, else a.b (c is a name in it)
            while imported and imported not in files:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root), on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child), on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_import_circle_in_genre_core_pages_or_training():
    assert circles(import_graph()) == []


def test_the_circle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]


def test_pages_import_no_model_store_audio_or_live_code():
    files = module_files()
    offending = {}
    for name, path in files.items():
        if not name.startswith("pages.") and name != "page_frame":
            continue
        bad = sorted(n for n in imported_names(path, name, False)
                     if any(n == f or n.startswith(f + ".") for f in PAGE_FORBIDDEN))
        if bad:
            offending[name] = bad
    assert offending == {}


def test_run_and_metrics_packages_import_without_torch():
    """ensemble, pooling, export and the report are numpy/pandas work: importing them must not
    cost torch's start-up (several seconds and ~500 MB)."""
    modules = [f"genre_core.{p.parent.name}.{p.stem}" for folder in ("runs", "metrics")
               for p in (ROOT / "genre_core" / folder).glob("*.py") if p.stem != "__init__"]
    modules.append("genre_core.app.classify")
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_genre_core_root_keeps_only_shared_infrastructure():
    root_modules = sorted(p.stem for p in (ROOT / "genre_core").glob("*.py"))
    assert len(root_modules) <= 8, root_modules
