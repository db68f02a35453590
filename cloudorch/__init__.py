"""cloudorch: provision AWS, Azure and Google Cloud and promote releases from one plan file.

The package's public surface is `cloudorch.api`; everything else is an implementation module
that owns one noun of DESIGN.md. Importing this package must stay cheap (no provider, no SDK).
"""

__version__ = "0.1.0"
