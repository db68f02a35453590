"""The sandbox: local emulators standing in for AWS, Google Cloud Storage and Azure.

`processes` knows each emulator's command line and starts, waits for and stops a process;
`emulators` starts, records, checks and stops the sandbox's detached emulators (`cloudorch sandbox
up|down|status`); `endpoints` turns a running sandbox into SDK environment variables and provider
overrides (`--sandbox`); `files` writes the sandbox's files without following symlinks.
It must never talk to a real cloud, never prints, and never imports `cloudorch.testing`
(which builds on it), `engine`, `run`, `release`, `api` or `cli`.
"""

from cloudorch.sandbox.emulators import Emulator, Sandbox, SandboxError, StopResult, down, sandbox_dir, status, up

__all__ = ["Emulator", "Sandbox", "SandboxError", "StopResult", "down", "sandbox_dir", "status", "up"]
