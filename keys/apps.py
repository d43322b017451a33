from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "keys"
    verbose_name = "API keys"

    def ready(self) -> None:
        from keys import checks, signals, usage  # noqa: F401  (checks registers itself)

        # Changes to keys and users drop the keys every process keeps.
        signals.connect()

        # Usage records buffered in memory are written when the process exits.
        usage.install_exit_flush()
