"""`python manage.py create_api_key NAME ...`: the raw key alone on the last line."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from keys.models import ENDPOINT_GROUP_NAMES
from keys.services import api_key_create


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Create an API key. Details go first; the raw key is printed ALONE on the last "
        "line (scripts: KEY=$(python manage.py create_api_key ci | tail -n 1)). "
        "It is shown once and stored nowhere."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="What the key is for, e.g. 'ci' or 'alice laptop'.")
        parser.add_argument(
            "--expires-days", type=_positive, metavar="N", help="Expire N days from now."
        )
        parser.add_argument(
            "--rate-limit",
            type=_positive,
            metavar="N",
            help="Requests per minute per endpoint group (default: chat 60, "
            "embeddings 120, others 100).",
        )
        parser.add_argument(
            "--tokens-per-minute", type=_positive, metavar="N", help="Token budget per minute."
        )
        parser.add_argument(
            "--endpoints",
            nargs="+",
            default=[],
            choices=sorted(ENDPOINT_GROUP_NAMES),
            metavar="GROUP",
            help=f"Allowed endpoint groups ({', '.join(sorted(ENDPOINT_GROUP_NAMES))}). "
            "Default: all.",
        )
        parser.add_argument(
            "--models", nargs="+", default=[], metavar="MODEL", help="Allowed models. Default: all."
        )
        parser.add_argument("--owner", metavar="USERNAME", help="The user responsible for it.")

    def handle(self, *args: Any, **options: Any) -> None:
        owner = None
        if options["owner"]:
            try:
                owner = get_user_model().objects.get_by_natural_key(options["owner"])
            except get_user_model().DoesNotExist:
                raise CommandError(f"No user named {options['owner']!r}.") from None
        expires_at = None
        if options["expires_days"]:
            expires_at = timezone.now() + timedelta(days=options["expires_days"])
        api_key, raw_key = api_key_create(
            name=options["name"],
            owner=owner,
            expires_at=expires_at,
            rate_limit=options["rate_limit"],
            tokens_per_minute=options["tokens_per_minute"],
            allowed_endpoints=options["endpoints"],
            allowed_models=options["models"],
        )
        expiry = f"{expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "never"
        self.stdout.write(
            f"Created API key {api_key.name!r} (prefix {api_key.prefix}, expires {expiry}). "
            "It is shown once, below:"
        )
        self.stdout.write(raw_key)
