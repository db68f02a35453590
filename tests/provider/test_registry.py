"""Provider discovery through real entry points: tiny plugins are installed for a test as a
`*.dist-info` folder on sys.path, which is exactly what pip leaves behind, and the registry
finds them through importlib.metadata like any other distribution."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

import cloudorch
from cloudorch.errors import ConfigError, ProviderNotFoundError
from cloudorch.provider.contract import CONTRACT_VERSION, ContractMismatchError, contract_admits
from cloudorch.provider.core import CoreProvider
from cloudorch.provider.registry import ENTRY_POINT_GROUP, Registry, install_command, install_hint

REPO = Path(__file__).resolve().parents[2]

PLUGIN = '''
from pydantic import BaseModel
{imports}

class Props(ResourceProperties):
    size: int = 1

class Thing(ResourceType[Props]):
    type_name = "{type_name}"
    Properties = Props
    description = "A thing."

    def create(self, address, props):
        return Observed("x")

    def read(self, address, id, props):
        return Observed(id)

    def update(self, address, id, old, new):
        return Observed(id)

    def delete(self, address, id, props):
        return None

class Config(BaseModel):
    pass

class Plugin(Provider):
    name = "{name}"
    package = "cloudorch-{name}"
    {contract}
    Config = Config
    resource_types = (Thing,)
'''
IMPORTS_2 = "from cloudorch.provider.contract import Observed, Provider, ResourceProperties, ResourceType"
# how a plugin written for the unversioned contract 1 imported it
IMPORTS_1 = "from cloudorch.providers import Observed, Provider, ResourceProperties, ResourceType"


class Site:
    """A folder on sys.path where a test installs plugin distributions."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[str] = []

    def install(
        self,
        name: str,
        *,
        contract: str | None = ">=2.0,<3",
        imports: str = IMPORTS_2,
        type_name: str | None = None,
        source: str | None = None,
        version: str = "0.3.0",
    ) -> str:
        module = f"plugin_{name}_{len(self.modules)}"
        self.modules.append(module)
        if source is None:
            source = PLUGIN.format(
                imports=imports,
                name=name,
                type_name=type_name or f"{name}.thing",
                contract=f"contract = {contract!r}" if contract is not None else "",
            )
        (self.root / f"{module}.py").write_text(textwrap.dedent(source))
        dist = f"cloudorch-{name}"
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{name} = {module}:Plugin\n")
        return module


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    s = Site(root)
    yield s
    for module in s.modules:
        sys.modules.pop(module, None)


# --------------------------------------------------------------------------- discovery


def test_core_is_a_peer_plugin_found_by_its_entry_point() -> None:
    (ep,) = metadata.entry_points(group=ENTRY_POINT_GROUP, name="core")
    assert ep.value == "cloudorch.provider.core:CoreProvider"
    assert ep.dist is not None and ep.dist.name == "cloudorch"
    assert Registry().provider_class("core") is CoreProvider


def test_a_plugin_is_listed_without_being_imported_and_loaded_on_first_use(site: Site) -> None:
    module = site.install("tiny")
    registry = Registry()
    assert "tiny" in registry.names()
    assert module not in sys.modules  # listing reads metadata only
    cls = registry.type_class("tiny.thing")
    assert module in sys.modules
    assert cls.type_name == "tiny.thing"
    assert registry.provider_class("tiny").name == "tiny"


def test_a_missing_provider_is_named_with_what_is_installed() -> None:
    with pytest.raises(ProviderNotFoundError, match=r"provider 'nosuch' is not installed \(installed: .*core") as info:
        Registry().provider_class("nosuch")
    assert info.value.hint == "pip install cloudorch-nosuch  (or: pip install 'cloudorch[nosuch]')"


# --------------------------------------------------------------------------- contract versions


def test_a_plugin_for_an_older_contract_is_refused_with_the_ranges_and_a_hint(site: Site) -> None:
    site.install("old", contract=">=1.0,<2")
    with pytest.raises(ContractMismatchError) as info:
        Registry().provider_class("old")
    err = info.value
    assert isinstance(err, ConfigError)  # a CloudorchError: the CLI prints it, no traceback
    assert "provider 'old'" in err.message
    assert "cloudorch-old 0.3.0" in err.message
    assert ">=1.0,<2" in err.message
    assert f"this cloudorch runs contract {CONTRACT_VERSION[0]}.{CONTRACT_VERSION[1]}" in err.message
    assert err.hint is not None
    assert err.hint.startswith("upgrade the plugin")
    assert "pip install --upgrade cloudorch-old" in err.hint
    assert "downgrade cloudorch" in err.hint


def test_a_plugin_for_a_newer_contract_asks_for_a_newer_cloudorch(site: Site) -> None:
    site.install("future", contract=">=3.0,<4")
    with pytest.raises(ContractMismatchError, match=r"'future'.*>=3.0,<4.*runs contract 2\.2") as info:
        Registry().provider_class("future")
    assert info.value.hint is not None
    assert info.value.hint.startswith("upgrade cloudorch")


def test_a_plugin_built_on_the_unversioned_contract_1_module_is_named_as_such(site: Site) -> None:
    site.install("legacy", contract=None, imports=IMPORTS_1)
    with pytest.raises(ContractMismatchError, match=r"'legacy'.*contract 1 \(it imports cloudorch.providers\)"):
        Registry().provider_class("legacy")


def test_an_unreadable_range_is_named(site: Site) -> None:
    site.install("odd", contract="~=2.0")
    with pytest.raises(ProviderNotFoundError, match=r"'odd'.*unreadable contract range.*'~=2.0'"):
        Registry().provider_class("odd")


# --------------------------------------------------------------------------- validation


def test_what_a_plugin_lacks_is_named(site: Site) -> None:
    site.install(
        "half",
        source="""
        from cloudorch.provider.contract import Provider, ResourceType

        class Thing(ResourceType):
            type_name = "half.thing"

            def create(self, address, props):
                return None

        class Plugin(Provider):
            name = "half"
            resource_types = (Thing,)
        """,
    )
    with pytest.raises(ProviderNotFoundError) as info:
        Registry().provider_class("half")
    message = info.value.message
    assert "provider 'half' (cloudorch-half 0.3.0" in message
    for piece in ("contract", "package", "Config", "half.thing.Properties", "half.thing: delete, read, update"):
        assert piece in message, piece


def test_a_type_outside_the_providers_namespace_is_refused(site: Site) -> None:
    site.install("ns", type_name="other.thing")
    with pytest.raises(ProviderNotFoundError, match=r"other\.thing: a type name starting with 'ns\.'"):
        Registry().provider_class("ns")


def test_an_entry_point_that_is_not_a_provider_class_is_refused(site: Site) -> None:
    site.install("notaclass", source="Plugin = 42\n")
    with pytest.raises(ProviderNotFoundError, match="is not a Provider class"):
        Registry().provider_class("notaclass")


def test_a_plugin_that_fails_to_import_is_not_called_missing(site: Site) -> None:
    site.install("broken", source="raise RuntimeError('boom at import')\n")
    with pytest.raises(ProviderNotFoundError, match=r"'broken' failed to load .*boom at import") as info:
        Registry().provider_class("broken")
    assert info.value.hint == "reinstall it: pip install --force-reinstall cloudorch-broken"


def test_a_broken_plugin_does_not_hide_the_types_of_the_others(site: Site) -> None:
    site.install("old", contract=">=1,<2")
    names = Registry().type_names()
    assert "core.null" in names
    assert not any(n.startswith("old.") for n in names)


# --------------------------------------------------------------------------- install hints


def test_install_hint_outside_a_checkout_names_the_distribution(tmp_path: Path) -> None:
    assert install_hint("aws", checkout=tmp_path) == "pip install cloudorch-aws  (or: pip install 'cloudorch[aws]')"
    assert install_command("aws", "cloudorch-aws", upgrade=True, checkout=tmp_path) == (
        "pip install --upgrade cloudorch-aws"
    )


def test_install_hint_inside_a_checkout_names_the_providers_folder(tmp_path: Path) -> None:
    (tmp_path / "providers" / "aws").mkdir(parents=True)
    (tmp_path / "providers" / "aws" / "pyproject.toml").write_text("[project]\nname = 'cloudorch-aws'\n")
    os.chdir(tmp_path)
    assert install_hint("aws", checkout=tmp_path) == "pip install -e providers/aws"
    # from elsewhere, the folder is named so the command works from there too
    os.chdir(tmp_path.parent)
    assert install_hint("aws", checkout=tmp_path) == f"pip install -e {tmp_path.name}/providers/aws"
    elsewhere = tmp_path.parent / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    os.chdir(elsewhere)
    assert install_hint("aws", checkout=tmp_path) == f"pip install -e {tmp_path / 'providers' / 'aws'}"


def test_a_checkout_never_installed_is_told_to_install_itself(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "cloudorch"\n[project.entry-points."cloudorch.providers"]\ncore = "x:Y"\n'
    )
    os.chdir(tmp_path)
    assert install_hint("core", checkout=tmp_path) == "pip install -e ."
    assert install_hint("other", checkout=tmp_path).startswith("pip install cloudorch-other")


def test_this_checkout_is_detected_beside_the_installed_package() -> None:
    # the suite runs from a source checkout: every shipped provider has its folder here
    assert Path(cloudorch.__file__).parents[1] == REPO
    for name in ("aws", "azure", "gcp"):
        assert install_hint(name) == f"pip install -e {REPO / 'providers' / name}"


def _validate(checkout: Path, plan: str) -> dict[str, object]:
    """Run `cloudorch validate --json` as a user would, with `cloudorch` imported from `checkout`."""
    (checkout / "plan.yaml").write_text(plan)
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run(
        [sys.executable, "-m", "cloudorch", "validate", "plan.yaml", "--json"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


PLAN_FOO = "version: 1\nname: t\nresources:\n  a:\n    type: foo.thing\n    properties: {}\n"


@pytest.mark.parametrize("in_checkout", [True, False])
def test_the_cli_hint_for_a_missing_provider(tmp_path: Path, in_checkout: bool) -> None:
    # a tree shaped like a checkout (`cloudorch/` and `providers/`) whose `cloudorch` is this one
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "cloudorch").symlink_to(Path(cloudorch.__file__).parent, target_is_directory=True)
    if in_checkout:
        (tree / "providers" / "foo").mkdir(parents=True)
        (tree / "providers" / "foo" / "pyproject.toml").write_text("[project]\nname = 'cloudorch-foo'\n")
    error = _validate(tree, PLAN_FOO)
    assert str(error["message"]).startswith("provider 'foo' is not installed (installed: ")
    if in_checkout:
        assert error["hint"] == "pip install -e providers/foo"
    else:
        assert error["hint"] == "pip install cloudorch-foo  (or: pip install 'cloudorch[foo]')"


# --------------------------------------------------------------------------- the distributions' pins


@pytest.mark.parametrize("name", ["aws", "azure", "gcp"])
def test_each_provider_distribution_pins_the_cloudorch_that_carries_its_contract(name: str) -> None:
    from packaging.requirements import Requirement

    pyproject = tomllib.loads((REPO / "providers" / name / "pyproject.toml").read_text())
    project = pyproject["project"]
    assert isinstance(project["license"], str)  # an SPDX expression, not the deprecated table
    (pin,) = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "cloudorch"]
    assert pin.specifier, f"cloudorch-{name} depends on an unpinned cloudorch"
    running = metadata.version("cloudorch")
    assert pin.specifier.contains(running), f"cloudorch-{name} pins {pin.specifier}, this is {running}"
    # the pin stops before the next cloudorch minor release, where the contract may break (0.x semver)
    major, minor, *_ = (int(p) for p in running.split("."))
    assert not pin.specifier.contains(f"{major}.{minor + 1}.0")
    (ep,) = metadata.entry_points(group=ENTRY_POINT_GROUP, name=name)
    assert contract_admits(Registry().provider_class(name).contract)
    assert ep.dist is not None and ep.dist.name == f"cloudorch-{name}"
