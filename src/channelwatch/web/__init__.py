"""The read-only web view (``channelwatch serve``): overview, channels, runs, report downloads.

``create_app`` builds the ASGI application for an instance; ``gate_for`` decides who may see it
(loopback without a password, any other address only with ``[web] password_env``).
"""

from __future__ import annotations

from channelwatch.web.app import create_app
from channelwatch.web.auth import gate_for, is_loopback

__all__ = ["create_app", "gate_for", "is_loopback"]
