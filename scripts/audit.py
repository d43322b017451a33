"""`make audit`: pip-audit over the pinned requirements, failing when it could not audit.

pip-audit reports "No known vulnerabilities found" and exits 0 even when it
audited nothing: a package it could not look up (no vulnerability database
reachable, a name the service does not know) is only listed as "skipped".
An audit that says nothing about a package must not pass, so this runs
pip-audit with JSON output and fails, loudly and with a distinct exit code,
unless every pinned package was actually looked up.

Exit codes: 0 every package audited, none vulnerable; 1 known
vulnerabilities; 2 the audit could not be done (or not for every package).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ("requirements.txt", "requirements-dev.txt")

OK, VULNERABLE, NOT_AUDITED = 0, 1, 2


@dataclass(frozen=True)
class Verdict:
    exit_code: int
    message: str


def audit_verdict(report: dict[str, Any] | None, *, stderr: str = "") -> Verdict:
    """What a pip-audit JSON report means for the build (None: pip-audit gave none)."""
    if report is None:
        return Verdict(
            NOT_AUDITED,
            "AUDIT FAILED: pip-audit produced no report, so nothing was audited.\n"
            + stderr.strip()[-2000:],
        )
    dependencies = report.get("dependencies") or []
    if not dependencies:
        return Verdict(NOT_AUDITED, "AUDIT FAILED: pip-audit audited no package at all.")
    skipped = [dep for dep in dependencies if dep.get("skip_reason")]
    if skipped:
        lines = "\n".join(f"  {dep['name']}: {dep['skip_reason']}" for dep in skipped)
        return Verdict(
            NOT_AUDITED,
            f"AUDIT FAILED: {len(skipped)} of {len(dependencies)} pinned packages could not "
            "be audited, so 'no known vulnerabilities' would mean nothing. Is a vulnerability "
            f"database (PyPI's JSON API, or OSV with PIP_AUDIT_SERVICE=osv) reachable?\n{lines}",
        )
    vulnerable = [dep for dep in dependencies if dep.get("vulns")]
    if vulnerable:
        lines = "\n".join(
            f"  {dep['name']} {dep.get('version', '')}: "
            + ", ".join(
                f"{vuln['id']} (fixed in {', '.join(vuln.get('fix_versions') or []) or '-'})"
                for vuln in dep["vulns"]
            )
            for dep in vulnerable
        )
        return Verdict(
            VULNERABLE,
            f"AUDIT FAILED: known vulnerabilities in {len(vulnerable)} of "
            f"{len(dependencies)} pinned packages:\n{lines}",
        )
    return Verdict(
        OK, f"Audit passed: {len(dependencies)} pinned packages, no known vulnerabilities."
    )


def pip_audit_command(service: str) -> list[str]:
    command = [sys.executable, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off"]
    for requirements in REQUIREMENTS:
        command += ["-r", str(ROOT / requirements)]
    # Every package is pinned: audit exactly those versions, without
    # installing them into a scratch environment first.
    command += ["--no-deps", "--disable-pip", "--vulnerability-service", service]
    return command


def main() -> int:
    import os

    service = os.environ.get("PIP_AUDIT_SERVICE", "pypi")
    done = subprocess.run(pip_audit_command(service), capture_output=True, text=True)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        report = None
    verdict = audit_verdict(report, stderr=done.stderr)
    print(verdict.message, file=sys.stderr if verdict.exit_code else sys.stdout)
    return verdict.exit_code


if __name__ == "__main__":
    sys.exit(main())
