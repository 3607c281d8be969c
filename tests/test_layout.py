"""The package's promises about itself: no import cycles, small modules and functions, every
module documented in docs/development.md, the README's Python example runs as written."""

import ast
import re
from pathlib import Path

import grimp
import numpy as np

from helpers import synthetic_reviews

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "lstmkit"


def test_no_module_imports_itself_around_a_loop():
    """Import-linter's layers contract checks folders against each other; this checks modules."""
    graph = grimp.build_graph("lstmkit")
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != module and graph.chain_exists(importer=imported, imported=module):
                cycles.append((module, imported))
    assert cycles == []


def test_no_top_level_name_hides_a_subpackage():
    """`lstmkit.NAME` resolves lazily; a name that is also a subpackage (explain) would be the
    function or the package depending on what was imported first (`lstmkit explain` broke so)."""
    import lstmkit

    assert [name for name in lstmkit.__all__ if (PACKAGE / name).is_dir()] == []


def test_every_module_is_in_the_development_guide():
    listed = set(re.findall(r"^\| `([\w/.]+)` \|", (ROOT / "docs" / "development.md").read_text(), flags=re.M))
    modules = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    assert modules - listed == set(), "add these to docs/development.md"
    assert {m for m in listed if m.endswith(".py")} - modules == set(), "these are gone from the package"
    for path in PACKAGE.rglob("*.py"):
        assert ast.get_docstring(ast.parse(path.read_text())), f"{path} has no module docstring"


MAX_MODULE_LINES = 400  # a module longer than this does several jobs: split it along one
MAX_FUNCTION_LINES = 80  # from `def` to the last line, docstring included: name the steps


def test_modules_and_functions_stay_small():
    long_modules, long_functions = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        name = path.relative_to(PACKAGE).as_posix()
        if source.count("\n") > MAX_MODULE_LINES:
            long_modules.append((name, source.count("\n")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long_functions.append((f"{name}:{node.lineno} {node.name}", lines))
    assert long_modules == [], f"over {MAX_MODULE_LINES} lines"
    assert long_functions == [], f"over {MAX_FUNCTION_LINES} lines"


def fake_imdb_archive(folder, n=60):
    """An aclImdb_labeled.tar.gz in the official layout, with synthetic reviews."""
    import tarfile

    for split, seed in (("train", 1), ("test", 2)):
        texts, labels = synthetic_reviews(n, seed=seed)
        for i, (text, y) in enumerate(zip(texts, labels)):
            sub = folder / "aclImdb" / split / ("pos" if y else "neg")
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"{i}_{9 if y else 2}.txt").write_text(text)
    archive = folder / "aclImdb_labeled.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder / "aclImdb", arcname="aclImdb")
    return archive


def test_the_readme_python_example_runs_as_written(tmp_path):
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", readme, flags=re.S).group(1)
    path = "../shared/data/imdb/aclImdb_labeled.tar.gz"
    assert block.count(path) == 2 and "epochs=5" in block
    code = block.replace(path, str(fake_imdb_archive(tmp_path))).replace("epochs=5", "epochs=2")
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert 0.0 <= scope["accuracy"] <= 1.0 and np.isfinite(scope["loss"])
    assert scope["model"].predict(["a superb film"]).shape == (1, 1)
