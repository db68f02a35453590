"""Releases: a version promoted from stage to stage of one plan file, through gates.

Owns the typed stages and gates (`model`), the `window` gate's time windows (`clock`), the ledger
of every release event (`ledger`), gate evaluation (`gates`) and the commands' logic
(`promotion`). It applies only through the operations layer `cloudorch.run` (one state document
per stage), never through `cloudorch.api` or `cloudorch.cli`, and never prints.
"""
