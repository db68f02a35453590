"""The policies' name for the actor, which lives in `cloudorch/actor.py` (one answer for every package)."""

from __future__ import annotations

from cloudorch.actor import CI_ACTOR_VARIABLES, Actor, current_actor

__all__ = ["CI_ACTOR_VARIABLES", "Actor", "current_actor"]
