"""search/ by job: packages import one way, no module imports itself back, the top level holds
only the packages and the thin command lines, and the flat names of before still load."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import search
import search.engine.warm

SEARCH = Path(search.__file__).parent
ORDER = ("folder", "reports", "engine", "studies")  # each imports only those before it
COMMANDS = {"__init__", "run", "status", "compare", "demo", "study", "sweep_train"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SEARCH.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, top_level_only: bool = False) -> set[str]:
    """The `search` modules `path` imports (anywhere in it, or at module level only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("search."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("search.")}
    return found


def package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in ORDER else None


def test_packages_import_one_way():
    wrong = []
    for path in SEARCH.rglob("*.py"):
        here = package_of(module_name(path))
        if here is None:
            continue  # a command line may import anything
        allowed = set(ORDER[: ORDER.index(here) + 1])
        wrong += [f"{module_name(path)} -> {m}" for m in imports(path)
                  if package_of(m) not in allowed]  # fmt: skip
    assert not wrong


def test_no_module_level_import_cycle():
    graph = {module_name(p): imports(p, top_level_only=True) for p in SEARCH.rglob("*.py")}

    def cycle_from(start: str, node: str, seen: tuple[str, ...]) -> tuple[str, ...] | None:
        for nxt in graph.get(node, ()):
            if nxt == start:
                return (*seen, nxt)
            if nxt not in seen and (found := cycle_from(start, nxt, (*seen, nxt))):
                return found
        return None

    cycles = [c for m in graph if (c := cycle_from(m, m, (m,)))]
    assert not cycles


def test_the_top_level_holds_packages_and_thin_commands():
    modules = {p.stem for p in SEARCH.glob("*.py")}
    packages = {p.name for p in SEARCH.iterdir() if (p / "__init__.py").is_file()}
    assert modules == COMMANDS
    assert packages == set(ORDER)
    for name in COMMANDS - {"__init__"}:
        assert len((SEARCH / f"{name}.py").read_text(encoding="utf-8").splitlines()) < 200


def test_a_flat_name_of_before_is_the_module_it_moved_to():
    import search.warm

    assert search.warm is search.engine.warm
    for old, new in search.MOVED.items():
        assert (SEARCH / f"{new.replace('.', '/')}.py").is_file(), old
        assert not (SEARCH / f"{old}.py").exists(), old


def test_state_pickled_under_a_flat_name_loads():
    fit = search.engine.warm.Passes(train_chars=1000, trial_s=60.0)
    data = pickle.dumps(fit, protocol=2)
    old = data.replace(b"search.engine.warm", b"search.warm")
    assert old != data
    assert pickle.loads(old) == fit
