"""cloudorch-azure: the `azure` provider (resource groups, any ARM resource, typed networking, storage
accounts, Key Vaults, identities and role assignments, blob containers, blobs).

Owns the `cloudorch.providers` entry point `azure`. Importing this package must not import an
Azure SDK: the SDKs load inside the methods that call Azure, so `cloudorch --help` stays fast.
"""

from cloudorch_azure.provider import AzureConfig, AzureProvider

__all__ = ["AzureConfig", "AzureProvider"]
