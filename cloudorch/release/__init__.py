"""Releases: a version promoted from stage to stage of one plan file, through gates.

Owns the ledger of every release event (`ledger`), gate evaluation (`gates`; signed approvals are checked
with ssh-keygen in `signing`) and the commands' logic (`promotion`); the stages grammar, window
gates included, is `cloudorch.planfile.stages`. It applies only through the operations layer `cloudorch.run` (one
state document per stage), never through `cloudorch.api` or `cloudorch.cli`, and never prints.
"""
