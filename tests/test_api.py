import yolossl


def test_public_names_are_deliberate() -> None:
    assert sorted(yolossl.__all__) == [
        "CycleConfig",
        "CycleResult",
        "Metrics",
        "RoundResult",
        "YolosslError",
        "__version__",
        "resume_cycle",
        "run_cycle",
    ]
    for name in yolossl.__all__:
        assert hasattr(yolossl, name)


def test_importing_does_not_import_the_training_engine() -> None:
    import subprocess
    import sys

    code = "import sys, yolossl; print('ultralytics' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _imports_between_modules() -> dict[str, set[str]]:
    """Module -> the yolossl modules it imports anywhere in its file (lazy imports inside functions too)."""
    import ast
    from pathlib import Path

    root = Path(yolossl.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def test_no_module_imports_another_that_imports_it_back() -> None:
    """An import cycle (even through a lazy import) means two rooms that should be one, or a room missing."""
    graph = _imports_between_modules()
    assert len(graph) > 40 and "yolossl.boxes" in graph["yolossl.label.engine"]  # the scan sees real edges

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and (seen.add(n) or reaches(n, goal, seen))) for n in graph[start])

    cycles = sorted(f"{a} -> {b} -> ... -> {a}" for a in graph for b in graph[a] if reaches(b, a, set()))
    assert not cycles, cycles
