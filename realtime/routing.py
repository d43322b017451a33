"""WebSocket routes."""

from django.urls import re_path

from realtime import consumers

# A session id is what the client names its conversation: 1-128 characters
# that need no escaping in a URL path.
SESSION_ID_PATTERN = r"[A-Za-z0-9._-]{1,128}"

websocket_urlpatterns = [
    re_path(rf"^ws/chat/(?P<session_id>{SESSION_ID_PATTERN})$", consumers.ChatConsumer.as_asgi()),
    # Anything else gets a clear 4404 instead of an unhandled routing error.
    re_path(r"", consumers.NotFoundConsumer.as_asgi()),
]
