import atexit
import os

from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Gateway core"

    def ready(self) -> None:
        from gateway import (
            checks,  # noqa: F401  (registers the system checks)
            metrics,
            schema,  # noqa: F401  (registers the OpenAPI security schemes)
        )
        from localai_site import checks as site_checks  # noqa: F401  (check --deploy)

        # A worker that exits stops counting in the live gauges (in flight,
        # WebSocket connections) that /metrics sums over all workers.
        atexit.register(metrics.process_exit, os.getpid())
