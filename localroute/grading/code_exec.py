"""Run MBPP-style asserts against a generated program in a subprocess with a timeout.

The program runs in a fresh interpreter (`-I`: no user site, no cwd on sys.path) in an empty
temporary directory, so a hanging or crashing answer costs one timeout, not the worker.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tempfile
from dataclasses import dataclass


@dataclass(frozen=True)
class CodeResult:
    passed: int
    total: int
    error: str | None


def parse_tests(reference: str) -> list[str]:
    """A reference is a Python list of assert lines (as stored), or asserts one per line."""
    try:
        value = ast.literal_eval(reference)
        if isinstance(value, list | tuple):
            return [str(v) for v in value]
    except (ValueError, SyntaxError):
        pass
    return [line for line in reference.splitlines() if line.strip().startswith("assert")]


def run_tests(program: str, tests: list[str], timeout_s: float = 5.0) -> CodeResult:
    """Count the asserts that pass; each runs after the program in one subprocess."""
    harness = [program, "", "__passed = 0"]
    for t in tests:
        harness += ["try:", f"    {t}", "    __passed += 1", "except Exception:", "    pass"]
    harness.append("print('__PASSED__', __passed)")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            proc = subprocess.run(
                [sys.executable, "-I", "-c", "\n".join(harness)],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            return CodeResult(0, len(tests), f"timeout after {timeout_s}s")
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith("__PASSED__"):
            return CodeResult(int(line.split()[1]), len(tests), None)
    err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return CodeResult(0, len(tests), err[:300])
