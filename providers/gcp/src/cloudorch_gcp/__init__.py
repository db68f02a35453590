"""cloudorch-gcp: the `gcp` provider (Cloud Storage buckets and objects).

Owns the `cloudorch.providers` entry point `gcp`. Importing this package must not import a
Google SDK: they load inside the methods that call Google, so `cloudorch --help` stays fast.
"""

from cloudorch_gcp.provider import GcpConfig, GcpProvider

__all__ = ["GcpConfig", "GcpProvider"]
