"""`manage.py check --deploy` with the production settings the README documents: no warning.

MIDDLEWARE lists subclasses of Django's security, clickjacking and CSRF
middleware; Django's deploy checks looked them up by path, reported them
missing (security.W001-W003) and skipped the checks that hid behind them.
"""

from __future__ import annotations

import secrets
import subprocess
import sys

from tests.processes import ROOT, server_env

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "api.example.com",
    "TLS": "true",
    "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
}


def check_deploy(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=server_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_passes_check_deploy_with_the_documented_production_settings() -> None:
    done = check_deploy(**PRODUCTION)

    assert done.returncode == 0, done.stderr + done.stdout
    assert "System check identified no issues" in done.stdout


def test_without_https_settings_it_names_the_real_problems_not_false_ones() -> None:
    done = check_deploy(**{**PRODUCTION, "TLS": "false"})

    report = done.stderr + done.stdout
    assert done.returncode != 0
    for real in ("security.W004", "security.W008", "security.W010", "security.W016"):
        assert real in report, report
    for false_positive in ("security.W001", "security.W002", "security.W003"):
        assert false_positive not in report, report
