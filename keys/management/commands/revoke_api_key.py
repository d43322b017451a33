"""`python manage.py revoke_api_key PREFIX_OR_KEY`: revoke for good."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from keys.models import ApiKey
from keys.services import api_key_parse, api_key_revoke


class Command(BaseCommand):
    help = "Revoke an API key, given its 8-character prefix or the whole key. Final."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key", help="The key's prefix (as the admin shows it) or the raw key.")

    def handle(self, *args: Any, **options: Any) -> None:
        given = options["key"].strip()
        prefix = api_key_parse(given) or given.removeprefix("lai_").rstrip("_…")
        try:
            api_key = ApiKey.objects.get(prefix=prefix)
        except ApiKey.DoesNotExist:
            raise CommandError(f"No API key with prefix {prefix!r}.") from None
        if not api_key.is_active:
            self.stdout.write(f"{api_key} was already revoked.")
            return
        api_key_revoke(api_key=api_key)
        self.stdout.write(f"Revoked {api_key}.")
