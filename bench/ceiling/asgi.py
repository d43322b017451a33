"""Django's stock ASGI application for the bare proxy."""

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "bench.ceiling.settings"

from django.core.asgi import get_asgi_application

application = get_asgi_application()
