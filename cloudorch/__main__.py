"""`python -m cloudorch` runs the CLI."""

from cloudorch.cli import main

raise SystemExit(main())
