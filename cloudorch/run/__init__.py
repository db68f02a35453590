"""Operations: one command's work from options to a typed result, below the facade `cloudorch/api.py`.

`options` (what a run is asked), `session` (load, lock, recover, read state), `plan` (changeset and
policy verdict), `apply` (apply, destroy, recover, undo of a failed apply), `revert` (return to a
state serial), `state_ops`, `drift`, `policy`, `info`. Returns values, raises `CloudorchError`s;
never prints, asks or installs signal handlers. Must not import `cloudorch.api` or `cloudorch.cli`,
nor `cloudorch.release` (release builds on this package).
"""
