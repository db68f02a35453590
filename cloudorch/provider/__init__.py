"""Providers: the plugin contract, the entry-point registry, and the built-in `core` provider.

`contract` is what every provider implements and imports (base classes, classified errors, the
helpers every cloud needs, the contract version); `registry` finds installed providers through
the `cloudorch.providers` entry point group; `core` is a provider like any other, registered by
its own entry point. This package sits just above `cloudorch.errors`: it must not import
`cloudorch.engine`, `cloudorch.run`, `cloudorch.api`, `cloudorch.cli` or `cloudorch.state`, and
it never imports a cloud SDK.
"""
