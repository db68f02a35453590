"""Resource addresses as users write them: `web`, `web[eu]`, `module.net[eu].vpc`, `module.net`.

This module owns reading and writing an address, and what `moved:`, `imports:` and `--exclude`
need of one: its canonical text, and whether one address lies inside another (`web[eu]` inside
`web`, `module.net[eu].vpc` inside `module.net`). It knows nothing of state or of a plan's
resources. Grammar::

    address := (module_step ".")* [resource_step]      (at least one step)
    module_step := "module." NAME [ "[" KEY "]" ]
    resource_step := NAME [ "[" KEY "]" ]

A KEY may be written bare (`web[eu]`) or quoted (`web["eu"]`); the canonical form is bare.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_STEP_RE = re.compile(rf"({_NAME})(?:\[\s*(?:\"([^\"\]]*)\"|'([^'\]]*)'|([^\]\"'\s]+))\s*\])?")


class AddressError(ValueError):
    """Text that is not an address; the message says what was expected."""


@dataclass(frozen=True)
class Step:
    """One step of an address: a module call or a resource, with its instance key if any."""

    name: str
    key: str | None = None
    module: bool = False

    def __str__(self) -> str:
        head = f"module.{self.name}" if self.module else self.name
        return head if self.key is None else f"{head}[{self.key}]"


@dataclass(frozen=True)
class Address:
    """A parsed address: module steps, then at most one resource step (the last)."""

    steps: tuple[Step, ...]

    def __str__(self) -> str:
        return ".".join(str(s) for s in self.steps)

    @property
    def resource(self) -> Step | None:
        """The resource step, None for an address naming a module (instance)."""
        last = self.steps[-1]
        return None if last.module else last

    def contains(self, other: Address) -> bool:
        """Whether `other` is this address or lies inside it.

        A step without a key holds every key of that name (`web` holds `web[eu]`); a module holds
        everything under it (`module.net` holds `module.net[eu].vpc`).
        """
        if len(other.steps) < len(self.steps):
            return False
        for i, mine in enumerate(self.steps):
            theirs = other.steps[i]
            if mine.name != theirs.name or mine.module != theirs.module:
                return False
            if mine.key is not None and mine.key != theirs.key:
                return False
            if mine.key is None and theirs.key is not None and i < len(self.steps) - 1:
                return False  # only the last step of `self` stands for all its keys
        return len(other.steps) == len(self.steps) or self.steps[-1].module

    def rebase(self, inside: Address, onto: Address) -> Address:
        """`inside` (which this address contains) moved from here to `onto`, keeping what follows.

        `web` -> `site` takes `web[eu]` to `site[eu]`; `module.a` -> `module.b` takes
        `module.a[x].vpc` to `module.b[x].vpc`. Raises AddressError when the key cannot follow
        (`web` -> `site[x]` for `web[eu]`).
        """
        n = len(self.steps)
        last_mine, last_theirs = self.steps[-1], inside.steps[n - 1]
        head = list(onto.steps)
        if last_mine.key is None and last_theirs.key is not None:
            if head[-1].key is not None:
                raise AddressError(
                    f"cannot move {inside} to {onto}[...]: {self} stands for every key, {onto} names one"
                )
            head[-1] = Step(head[-1].name, last_theirs.key, head[-1].module)
        return Address((*head, *inside.steps[n:]))


def parse_address(text: str) -> Address:
    """Read an address; raise AddressError saying what is wrong."""
    s = text.strip()
    if not s:
        raise AddressError("an address is empty (write e.g. `web`, `web[eu]` or `module.net[eu].vpc`)")
    steps: list[Step] = []
    pos = 0
    while True:
        module = s.startswith("module.", pos)
        if module:
            pos += len("module.")
        m = _STEP_RE.match(s, pos)
        if m is None:
            raise AddressError(
                f"`{text}` is not an address: cannot read {s[pos:]!r} "
                "(write e.g. `web`, `web[eu]` or `module.net[eu].vpc`)"
            )
        name, dq, sq, bare = m.groups()
        key = dq if dq is not None else sq if sq is not None else bare
        steps.append(Step(name, key, module))
        pos = m.end()
        if pos == len(s):
            break
        if s[pos] != "." or not module:
            raise AddressError(
                f"`{text}` is not an address: only `module.NAME[KEY]` steps may be followed by `.`"
                if s[pos] == "."
                else f"`{text}` is not an address: unexpected {s[pos:]!r}"
            )
        pos += 1
    return Address(tuple(steps))


def canonical(text: str) -> str:
    """An address's canonical text (`web["eu"]` -> `web[eu]`); raises AddressError."""
    return str(parse_address(text))


def glob_pattern(pattern: str) -> re.Pattern[str]:
    """A compiled address glob: `*` matches any run of characters, everything else is literal.

    Brackets are literal (they are part of addresses), unlike in shell globs.
    """
    return re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern) + r"\Z")
