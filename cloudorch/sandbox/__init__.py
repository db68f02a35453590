"""The sandbox: local emulators standing in for AWS, Google Cloud Storage and Azure.

`emulators` runs them (`cloudorch sandbox up|down|status`); `endpoints` points a run at them
(`--sandbox`). It never talks to a real cloud and never prints; it may import `errors`, `state`
and `provider`, never `engine`, `run`, `release`, `api` or `cli`.
"""

from cloudorch.sandbox.emulators import Emulator, Sandbox, SandboxError, down, sandbox_dir, status, up

__all__ = ["Emulator", "Sandbox", "SandboxError", "down", "sandbox_dir", "status", "up"]
