"""Fixtures of the source contract suite: the loopback fake platforms and poll environments."""

from __future__ import annotations

from tests.fakeplatforms import fake_platforms
from tests.sources.contract import poll_env_factory

__all__ = ["fake_platforms", "poll_env_factory"]
