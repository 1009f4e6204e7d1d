"""The documentation: the site builds with warnings as errors, and every README / quick-start snippet runs."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: a code block that starts with this comment needs downloads (e.g. the official IRASim checkpoints)
SKIP_MARKER = "# doctest: skip-download"
SNIPPET_PAGES = ("README.md", "docs/quickstart.md")


def python_blocks(path: Path) -> list[str]:
    """The ```python blocks of a markdown file, in order."""
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.M | re.S)


SNIPPETS = [(page, i, block) for page in SNIPPET_PAGES for i, block in enumerate(python_blocks(ROOT / page))]


def test_pages_have_snippets_and_markers_are_rare():
    assert {page for page, _, _ in SNIPPETS} == set(SNIPPET_PAGES)
    skipped = [(page, i) for page, i, block in SNIPPETS if SKIP_MARKER in block]
    assert len(skipped) <= 1, f"only the official-checkpoint block may skip: {skipped}"


@pytest.mark.parametrize("page,index,block", SNIPPETS, ids=[f"{p}-{i}" for p, i, _ in SNIPPETS])
def test_snippet_runs(page, index, block, tmp_path):
    if SKIP_MARKER in block:
        pytest.skip(f"{page} block {index} needs a download")
    pytest.importorskip("gym_pusht")
    code = "import torch; torch.set_num_threads(1)\n" + block
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"{page} block {index} failed:\n{block}\n{result.stderr[-3000:]}"


def test_docs_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "api" / "core" / "index.html").is_file()


def test_docs_describe_the_product_not_its_history():
    pattern = re.compile(r"sessions? [0-9]", re.I)
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
    hits = [f"{p.relative_to(ROOT)}:{n}" for p in pages for n, line in enumerate(p.read_text().splitlines(), 1)
            if pattern.search(line) or "/work/" in line]
    assert not hits, hits
