"""`python -m cloudorch` runs the CLI."""

from cloudorch.cli import run

run()
