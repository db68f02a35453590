"""The fixtures of the CI host tests; the helpers they share are in `cihelpers.py` (a name of its
own: in a whole-suite run `conftest` may be another directory's module)."""

from cihelpers import gitlab_api

__all__ = ["gitlab_api"]
