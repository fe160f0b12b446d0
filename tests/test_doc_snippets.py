"""Every Python snippet in README.md and docs/ runs as written (issue 14).

Each ```python block must follow a marker line saying where it runs:

* ``<!-- snippet: devnet -->``: in a directory holding ``devnet/``, the data directory of a running
  ``mps-node dev`` (anvil L1, contracts, twelve staked dev clients), and a ``train.py`` (the
  requester's script); the one substitution is the node's port (the snippets say 8645, the
  test's node listens on a free one);
* ``<!-- snippet: anvil -->``: with the project's anvil and contracts, nothing else;
* ``<!-- snippet: not run: REASON -->``: listed, with the reason, by
  :func:`test_every_snippet_says_where_it_runs`.

A block without a marker fails the test, so a new snippet cannot go untested by accident.
Snippets run in their own interpreter, in the order they appear, README first.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from devnet_process import dev_env, dev_node

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"<!-- snippet: (?P<kind>devnet|anvil|not run: (?P<why>.+?)) -->")
DEV_PORT = "127.0.0.1:8645"


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int  # of the opening fence, 1-based
    kind: str  # devnet, anvil, not run, or "" (no marker)
    why: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def snippets() -> list[Snippet]:
    found = []
    for path in DOCS:
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            if lines[i].strip() == "```python":
                start = i
                body = []
                i += 1
                while lines[i].strip() != "```":
                    body.append(lines[i])
                    i += 1
                prev = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
                m = MARKER.search(prev)
                kind = "" if m is None else m["kind"].split(":")[0]
                why = "" if m is None or m["why"] is None else m["why"]
                found.append(Snippet(path, start + 1, kind, why, "\n".join(body) + "\n"))
            i += 1
    return found


def test_every_snippet_says_where_it_runs() -> None:
    found = snippets()
    assert len(found) >= 5  # README (2), user guide (2), contracts (1) at least
    unmarked = [s.name for s in found if not s.kind]
    assert not unmarked, f"snippets with no <!-- snippet: ... --> marker: {unmarked}"
    for s in found:
        if s.kind == "not run":
            print(f"not run: {s.name}: {s.why}")


def _env() -> dict[str, str]:
    return {**dev_env(), "PYTHONPATH": str(ROOT)}


def _run(s: Snippet, cwd: Path, code: str) -> subprocess.CompletedProcess[str]:
    path = cwd / f"snippet_{s.path.stem}_{s.line}.py"
    path.write_text(code)
    return subprocess.run(
        [sys.executable, str(path)], cwd=cwd, env=_env(), capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A running ``mps-node dev`` whose data directory is ``<dir>/devnet``."""
    pytest.importorskip("torch")
    work = tmp_path_factory.mktemp("snippets")
    with dev_node(work / "devnet", work / "node.log") as node:
        (work / "train.py").write_text("# the requester's training script, run by each client\n")
        yield work, node.url.removeprefix("http://").rstrip("/")


SNIPPETS = snippets()
DEVNET = [s for s in SNIPPETS if s.kind == "devnet"]
ANVIL = [s for s in SNIPPETS if s.kind == "anvil"]


@pytest.mark.parametrize("snippet", DEVNET, ids=[s.name for s in DEVNET])
def test_a_devnet_snippet_runs_as_written(snippet: Snippet, devnet: tuple[Path, str]) -> None:
    work, hostport = devnet
    assert DEV_PORT in snippet.code, "a devnet snippet names the dev node at 127.0.0.1:8645"
    out = _run(snippet, work, snippet.code.replace(DEV_PORT, hostport))
    print(out.stdout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


@pytest.mark.parametrize("snippet", ANVIL, ids=[s.name for s in ANVIL])
def test_an_anvil_snippet_runs_as_written(snippet: Snippet, tmp_path: Path) -> None:
    out = _run(snippet, tmp_path, snippet.code)
    print(out.stdout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
