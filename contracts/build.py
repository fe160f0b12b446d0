"""Compile the Solidity sources with the pinned solcjs and write ``contracts/build/<Name>.json``.

``python -m contracts.build`` compiles every ``.sol`` file under ``contracts/`` (``test/``
included) in one ``solcjs --standard-json`` run (optimizer on, 200 runs, evmVersion cancun) and
writes one artifact ``{"abi": [...], "bytecode": "0x..."}`` per deployable contract (abstract
contracts, interfaces and libraries have none). The output is deterministic (sorted keys, indent 1,
trailing newline), so the artifacts are committed and ``--check`` proves that they match the
sources: it writes nothing and exits 1 listing every artifact that differs, is missing, or has no
contract any more.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
BUILD_DIR = ROOT / "build"
SOLCJS = ROOT / "node_modules" / ".bin" / "solcjs"
SOLC_VERSION = "0.8.28"
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"], "": ["ast"]}},
}


class BuildError(RuntimeError):
    """solcjs is missing or the sources do not compile."""


def sources() -> dict[str, Path]:
    """Source unit name (path relative to ``contracts/``) -> file, in a stable order."""
    files = sorted(p for p in ROOT.rglob("*.sol") if "node_modules" not in p.parts)
    return {p.relative_to(ROOT).as_posix(): p for p in files}


def _run_solc(units: dict[str, Path]) -> dict[str, Any]:
    if not SOLCJS.exists():
        raise BuildError(
            f"{SOLCJS} not found: run `bash scripts/setup.sh` (npm installs solc {SOLC_VERSION})"
        )
    request = {
        "language": "Solidity",
        "sources": {name: {"content": path.read_text()} for name, path in units.items()},
        "settings": SETTINGS,
    }
    # stdout goes to a file, not a pipe: node exits before flushing a pipe past 64 KiB; so does
    # stdin: solcjs reads it with readFileSync after node made the pipe non-blocking, which fails
    # with EAGAIN whenever it runs ahead of the writer (seen here, now and then)
    with tempfile.TemporaryFile(mode="w+") as out, tempfile.TemporaryFile(mode="w+") as src:
        src.write(json.dumps(request))
        src.seek(0)
        proc = subprocess.run(
            [str(SOLCJS), "--standard-json"],
            stdin=src,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            check=False,
        )
        out.seek(0)
        stdout = out.read()
    # solcjs prints notes (">>> Cannot retry compilation with SMT ...") before the JSON document
    start = stdout.find("{")
    if proc.returncode != 0 or start < 0:
        raise BuildError(
            f"solcjs failed ({proc.returncode}): {proc.stderr.strip() or stdout.strip()}"
        )
    output: dict[str, Any] = json.loads(stdout[start:])
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise BuildError("\n".join(e.get("formattedMessage", e.get("message", "")) for e in errors))
    return output


def _deployable(output: dict[str, Any]) -> set[tuple[str, str]]:
    """(source unit, contract name) of every concrete contract (no abstract, interface, library)."""
    found: set[tuple[str, str]] = set()
    for unit, source in output.get("sources", {}).items():
        for node in source.get("ast", {}).get("nodes", []):
            if (
                node.get("nodeType") == "ContractDefinition"
                and node.get("contractKind") == "contract"
                and not node.get("abstract", False)
            ):
                found.add((unit, node["name"]))
    return found


def compile_all() -> dict[str, str]:
    """Compile every source; return ``{"<Name>.json": artifact text}``."""
    output = _run_solc(sources())
    deployable = _deployable(output)
    artifacts: dict[str, str] = {}
    for unit, contracts in sorted(output.get("contracts", {}).items()):
        for name, data in sorted(contracts.items()):
            if (unit, name) not in deployable:
                continue
            filename = f"{name}.json"
            if filename in artifacts:
                raise BuildError(f"two contracts are named {name}: artifact names must be unique")
            artifact = {"abi": data["abi"], "bytecode": "0x" + data["evm"]["bytecode"]["object"]}
            artifacts[filename] = json.dumps(artifact, sort_keys=True, indent=1) + "\n"
    for warning in (e for e in output.get("errors", []) if e.get("severity") != "error"):
        print(warning.get("formattedMessage", warning.get("message", "")).rstrip(), file=sys.stderr)
    return artifacts


def differences(artifacts: dict[str, str], build_dir: Path = BUILD_DIR) -> list[str]:
    """What differs between freshly built ``artifacts`` and the files in ``build_dir``."""
    existing = {p.name for p in build_dir.glob("*.json")} if build_dir.is_dir() else set()
    diffs = []
    for filename, text in sorted(artifacts.items()):
        path = build_dir / filename
        if filename not in existing:
            diffs.append(f"{filename}: missing")
        elif path.read_text() != text:
            diffs.append(f"{filename}: differs from the sources")
    diffs += [
        f"{name}: no contract of that name any more" for name in sorted(existing - artifacts.keys())
    ]
    return diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m contracts.build", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--check", action="store_true", help="compare with contracts/build/ instead of writing"
    )
    args = parser.parse_args(argv)
    try:
        artifacts = compile_all()
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        diffs = differences(artifacts)
        for line in diffs:
            print(line)
        if diffs:
            print("run `python -m contracts.build` and commit contracts/build/", file=sys.stderr)
            return 1
        print(f"{len(artifacts)} artifacts match the sources")
        return 0
    BUILD_DIR.mkdir(exist_ok=True)
    for stale in set(p.name for p in BUILD_DIR.glob("*.json")) - artifacts.keys():
        (BUILD_DIR / stale).unlink()
    for filename, text in artifacts.items():
        path = BUILD_DIR / filename
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    print(f"wrote {len(artifacts)} artifacts to {BUILD_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
