"""`make audit` (scripts/audit.py): an audit that could not look a package up fails."""

from __future__ import annotations

import subprocess
import sys

from scripts.audit import NOT_AUDITED, OK, ROOT, VULNERABLE, audit_verdict

DJANGO = {"name": "django", "version": "5.2.19", "vulns": []}


def test_it_passes_only_when_every_package_was_looked_up_and_none_is_vulnerable() -> None:
    verdict = audit_verdict({"dependencies": [DJANGO, {**DJANGO, "name": "redis"}]})

    assert verdict.exit_code == OK
    assert "2 pinned packages, no known vulnerabilities" in verdict.message


def test_it_fails_loudly_when_a_package_could_not_be_audited() -> None:
    skipped = {"name": "redis", "skip_reason": "Dependency not found on PyPI and could not be"}

    verdict = audit_verdict({"dependencies": [DJANGO, skipped]})

    assert verdict.exit_code == NOT_AUDITED
    assert verdict.message.startswith("AUDIT FAILED: 1 of 2 pinned packages could not be audited")
    assert "redis: Dependency not found" in verdict.message


def test_it_fails_when_pip_audit_gave_no_report_or_audited_nothing() -> None:
    assert audit_verdict(None, stderr="ConnectionError: osv").exit_code == NOT_AUDITED
    assert "ConnectionError" in audit_verdict(None, stderr="ConnectionError: osv").message
    assert audit_verdict({"dependencies": []}).exit_code == NOT_AUDITED


def test_it_fails_on_known_vulnerabilities_naming_them() -> None:
    vulnerable = {**DJANGO, "vulns": [{"id": "PYSEC-1", "fix_versions": ["5.2.20"]}]}

    verdict = audit_verdict({"dependencies": [vulnerable]})

    assert verdict.exit_code == VULNERABLE
    assert "django 5.2.19: PYSEC-1 (fixed in 5.2.20)" in verdict.message


def test_it_never_reports_success_without_auditing_every_pinned_package() -> None:
    # Here no vulnerability database is reachable: the run must fail and say
    # so. Where one is reachable it must have audited every pinned package.
    done = subprocess.run(
        [sys.executable, "scripts/audit.py"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )

    if done.returncode == OK:
        assert "pinned packages, no known vulnerabilities" in done.stdout
    else:
        assert done.returncode in (VULNERABLE, NOT_AUDITED)
        assert "AUDIT FAILED" in done.stderr
