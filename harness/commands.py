"""Run the repository's manage.py in a given environment, checked."""

from __future__ import annotations

import re
import subprocess
import sys

from harness.base import ROOT, HarnessError

# A token's secret never goes into an error message: keep its public prefix only.
TOKEN = re.compile(r"\b([a-z]{2,8}_(?:pub_)?(?:live|test|dev)_[0-9A-Za-z]{12})_[0-9A-Za-z]+")


class CommandFailed(HarnessError):
    """A management command exited with a status other than 0."""


def manage(env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 600) -> str:
    """Run `manage.py *args` from the repository's root; return its standard output, stripped.

    Raises CommandFailed, with both outputs (tokens masked), if it exits with another
    status than 0.
    """
    try:
        result = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"manage.py {' '.join(args)} did not finish in {timeout:g} s") from None
    if result.returncode != 0:
        output = TOKEN.sub(r"\1_…", result.stdout + result.stderr)
        raise CommandFailed(
            f"manage.py {' '.join(args)} exited with status {result.returncode}:\n{output}"
        )
    return result.stdout.strip()
