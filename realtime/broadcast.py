"""Notices to chat sessions through the channel layer's groups.

Every chat connection joins the group of all sessions and the group of the
key or user it acts for, so a notice reaches the sockets held by every worker
process (Redis in the scale-out configuration). The consumer turns the group
message into a `notice` frame: `{"type": "notice", "message", "level"}`.
"""

from __future__ import annotations

from channels.layers import get_channel_layer

from keys.policy import Caller

ALL_SESSIONS = "chat.notices"
LEVELS = ("info", "warning", "error")
# The channel layer's message type; Channels calls the consumer's `chat_notice`.
EVENT_TYPE = "chat.notice"


def key_group(key_id: int) -> str:
    return f"chat.notices.key.{key_id}"


def user_group(user_id: int) -> str:
    return f"chat.notices.user.{user_id}"


def groups_for(caller: Caller) -> list[str]:
    """The groups a connection of `caller` joins."""
    groups = [ALL_SESSIONS]
    if caller.api_key is not None:
        groups.append(key_group(caller.api_key.pk))
    elif caller.user is not None:
        groups.append(user_group(caller.user.pk))
    return groups


async def notice_send(
    *, message: str, level: str = "info", key_id: int | None = None, user_id: int | None = None
) -> str:
    """Send a notice to every chat session, or to one key's or one user's; returns the group."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}")
    if key_id is not None:
        group = key_group(key_id)
    elif user_id is not None:
        group = user_group(user_id)
    else:
        group = ALL_SESSIONS
    await get_channel_layer().group_send(
        group, {"type": EVENT_TYPE, "message": message, "level": level}
    )
    return group
