"""ASGI entry point: HTTP through Django, WebSockets through Channels.

Django is initialised before anything imports models or routing.
"""

import gc
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "localai_site.settings")
django.setup(set_prefix=False)  # what get_asgi_application() does first

# Django's handler, except that API requests get no thread of their own.
from localai_site.handlers import GatewayASGIHandler  # noqa: E402

django_asgi_app = GatewayASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from keys.lifespan import lifespan_app  # noqa: E402
from realtime.middleware import ChatAuthMiddleware, OriginValidator  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Browser Origins other than the site's own (scheme, host, port) or
        # CSRF_TRUSTED_ORIGINS are refused (HTTP 403); clients sending no
        # Origin (scripts) pass. Then the session user is resolved,
        # then the key or session decides who the connection acts for.
        "websocket": OriginValidator(
            AuthMiddlewareStack(ChatAuthMiddleware(URLRouter(websocket_urlpatterns)))
        ),
        # Shutdown writes the usage records still buffered (servers that speak lifespan).
        "lifespan": lifespan_app,
    }
)

# Everything imported so far (Django, DRF, the URL resolvers, the schema
# tooling...) lives as long as the process. Moved out of the collector's
# sight, it is not walked again by every full collection: without this, a
# full collection now and then stalls the event loop for tens of
# milliseconds, which every open stream sees as a late token.
gc.collect()
gc.freeze()
