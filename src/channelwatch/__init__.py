"""channelwatch: counts what a government office publishes on its website, Weibo and WeChat.

The library does the work; the CLI (``channelwatch.cli``) and the daemon only call it.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
