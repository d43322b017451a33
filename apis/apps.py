from django.apps import AppConfig


class ApisConfig(AppConfig):
    name = "apis"
    verbose_name = "Inference API"

    def ready(self) -> None:
        from apis import (
            checks,  # noqa: F401  (registers the system checks)
            schema,  # noqa: F401  (registers the OpenAPI security schemes)
        )
        from localai_site import checks as site_checks  # noqa: F401  (check --deploy)
