"""docs/architecture.md stays true: every module of the package is in its table, and it links nowhere outside.

The layers themselves are checked by ``make lint`` (import-linter, ``pyproject.toml``);
this checks the page a newcomer reads to find where a stage lives.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "architecture.md").read_text()


def table_paths() -> set[str]:
    """The paths the module table names in its first column (a package folder names all of its modules)."""
    paths = set()
    for line in PAGE.splitlines():
        if line.startswith("| `"):
            paths.update(re.findall(r"`([^`]+)`", line.split(" | ")[0]))
    return paths


def test_every_module_of_the_package_is_in_the_module_table() -> None:
    named = table_paths()
    missing = []
    for module in sorted((ROOT / "mlops_ray").rglob("*.py")):
        relative = module.relative_to(ROOT).as_posix()
        if module.name == "__init__.py" and module.parent.name != "cli":
            continue  # a package's __init__ only re-exports; its modules are listed one by one
        folder = relative.rsplit("/", 1)[0] + "/"
        sibling = f"{relative.rsplit('/', 2)[-2]}/{module.name}"  # e.g. compare/diff.py, named beside report.py
        if not ({relative, folder} & named or any(sibling in path for path in named)):
            missing.append(relative)
    assert not missing, f"modules missing from docs/architecture.md's table: {missing}"


def test_every_stage_package_has_a_stage_entry_and_no_top_level_module_shares_its_name() -> None:
    stages = ("data", "train", "evaluate", "tune", "promote", "serve", "monitor", "compare", "modeltests")
    for stage in stages:
        assert (ROOT / "mlops_ray" / stage / "stage.py").is_file(), stage
    top_level = {p.stem for p in (ROOT / "mlops_ray").glob("*.py")}
    old_names = {"training", "evaluation", "promotion", "serving", "monitoring", "comparison", "model_testing"}
    assert not top_level & (set(stages) | old_names)


def test_the_page_links_nowhere_outside_the_repository() -> None:
    for target in re.findall(r"\]\(([^)]+)\)", PAGE):
        assert target.startswith(("http://", "https://", "#")) or not target.startswith(".."), target
        if not target.startswith(("http://", "https://", "#")):
            assert (ROOT / "docs" / target).exists(), target
