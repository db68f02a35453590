"""The engine: plan (`planner`: refresh + diff), apply (`scheduler`, `applier`), the undo of a failed
apply (`undo`), crash recovery (`recovery`), drift (`drift`, `ignore`) and retries (`retry`).

Works on values it is handed (plan, state, providers, journal) and never prints; the caller holds
the state lock. Must not import `run`, `release`, `testing`, `api` or `cli`: they call it.
"""
