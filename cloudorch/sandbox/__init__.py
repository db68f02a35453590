"""The sandbox: local emulators standing in for AWS, Google Cloud Storage and Azure.

`emulators` starts, records, checks and stops the emulator processes (`cloudorch sandbox
up|down|status`); `endpoints` turns a running sandbox into SDK environment variables and provider
overrides (`--sandbox`). It must never talk to a real cloud, and never prints.
"""

from cloudorch.sandbox.emulators import Emulator, Sandbox, SandboxError, down, sandbox_dir, status, up

__all__ = ["Emulator", "Sandbox", "SandboxError", "down", "sandbox_dir", "status", "up"]
