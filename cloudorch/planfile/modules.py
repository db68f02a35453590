"""Modules: a folder holding `module.yaml`, used from a plan under `modules:`, expanded at load.

This module owns the module file format, the `modules:` call (source, for_each, inputs), module
addresses (`module.net[eu].vpc`, nested `module.a[x].module.b.res`) and `${modules.NAME[KEY].OUT}`.

A module is expanded when the plan is loaded: every instance's resources (and any other named
section the plan language has, see `NAMED_SECTIONS`) join the root plan under prefixed names, with
their references rewritten into the root namespace (`${var.cidr}` becomes the input's template,
`${resources.vpc.id}` becomes `${resources["module.net[eu].vpc"].id}`, `${modules.x.out}` the
output's template). The engine, state, policy and graph then see ordinary resources whose names
are module addresses, and a resource depends on exactly what it references. Expansion is lazy per
input and output, so two modules may feed each other as long as no value feeds itself (that is a
located cycle error). Errors name the module file and the call site.

Module sources are resolved by `cloudorch.planfile.modsource` (folders, git, the lock file).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from cloudorch.errors import ConfigError, Location, did_you_mean
from cloudorch.planfile.expressions import (
    ExpressionError,
    Reference,
    _render,
    navigate,
    parse_template,
    path_of,
    strings_in,
)
from cloudorch.planfile.limits import InputLimits
from cloudorch.planfile.load import for_each_keys
from cloudorch.planfile.model import (
    NAME_PATTERN,
    PROVIDER_KEY_PATTERN,
    ModuleCallSpec,
    PlanFileModel,
    ResourceSpec,
    VariableSpec,
)
from cloudorch.planfile.modsource import ModuleLock, is_git, parse_git_source
from cloudorch.planfile.source import FieldPath, SourceMap, parse_yaml, read_bounded
from cloudorch.planfile.variables import _type_of, matches, remember_secret

MODULE_FILE = "module.yaml"
#: plan sections that belong to the root plan only (a module uses the caller's providers and state)
ROOT_ONLY = frozenset({"version", "name", "providers", "stages", "release", "policies", "backend", "moved", "imports"})
#: sections of named entries referenced as `${ROOT.NAME...}`: each instance's entries join the root
#: section under `ADDRESS.NAME`; a section the plan model gains later is picked up by its name here
NAMED_SECTIONS: dict[str, str] = {"resources": "resources", "data": "data", "locals": "local"}
#: references a module passes through unchanged (they mean the same everywhere in a plan)
_PASS_THROUGH = frozenset({"env", "stage", "release"})
#: resource fields that hold no templates (names and rules, rewritten by their own code if at all)
_LITERAL_RESOURCE_FIELDS = frozenset({"type", "provider", "depends_on", "lifecycle"})
_NAME_RE = re.compile(NAME_PATTERN)
_PROVIDER_KEY_RE = re.compile(PROVIDER_KEY_PATTERN)
_PLAIN_STEP = re.compile(r"^[A-Za-z0-9_-]+$")


def _module_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {n: (f.annotation, f) for n, f in PlanFileModel.model_fields.items() if n not in ROOT_ONLY}
    fields["description"] = (str, Field("", description="What the module builds."))
    return fields


#: the top level of `module.yaml`: the plan file's sections minus `ROOT_ONLY`, plus `description`
ModuleFileModel: type[BaseModel] = create_model(
    "ModuleFileModel",
    __config__=ConfigDict(extra="forbid", strict=True),
    __doc__="The top level of a module file (`module.yaml`).",
    **_module_fields(),
)
MODULE_KEYS = tuple(ModuleFileModel.model_fields)


def module_address(parent: str, name: str, key: str | None) -> str:
    """`module.NAME[KEY]` under `parent` (`""` for the root plan)."""
    own = f"module.{name}" if key is None else f"module.{name}[{key}]"
    return f"{parent}.{own}" if parent else own


def module_of(address: str) -> str | None:
    """The module instance an address lives in (`module.a[x].module.b` for `module.a[x].module.b.r[k]`)."""
    path = module_path(address)
    return path[-1] if path else None


def module_path(address: str) -> list[str]:
    """Every enclosing module instance of an address, outermost first."""
    if not address.startswith("module."):
        return []
    tokens = _split_dots(address)
    out: list[str] = []
    acc = ""
    i = 0
    while i + 1 < len(tokens) and tokens[i] == "module":
        acc = f"{acc}.module.{tokens[i + 1]}" if acc else f"module.{tokens[i + 1]}"
        out.append(acc)
        i += 2
    if i >= len(tokens) and out:
        out.pop()  # `module.a.module.b` names a module instance, whose enclosing one is `module.a`
    return out


def _split_dots(address: str) -> list[str]:
    """Split at the dots outside brackets (`web[a.b]` stays whole)."""
    out: list[str] = []
    depth = 0
    start = 0
    for i, c in enumerate(address):
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        elif c == "." and depth == 0:
            out.append(address[start:i])
            start = i + 1
    out.append(address[start:])
    return out


# --------------------------------------------------------------------------- module files


@dataclass
class _ModuleDef:
    """One `module.yaml`, parsed and validated (shared by every call and instance of it)."""

    path: Path
    model: Any  # a ModuleFileModel
    source_map: SourceMap
    text: str

    @property
    def variables(self) -> dict[str, VariableSpec]:
        out: dict[str, VariableSpec] = self.model.variables
        return out

    def section(self, name: str) -> dict[str, Any]:
        got = getattr(self.model, name, None)
        return got if isinstance(got, dict) else {}


@dataclass
class _Call:
    """One `modules:` entry of a plan or module, with its instances."""

    name: str
    spec: ModuleCallSpec
    frame: _Frame  # where the call is written
    mdef: _ModuleDef
    keys: dict[str, Any] | None
    instances: dict[str | None, _Frame] = field(default_factory=dict)
    #: instance keys whose `enabled:` is false: they are not in the plan (their objects are deleted)
    disabled: set[str | None] = field(default_factory=set)

    @property
    def site(self) -> Location:
        return self.frame.source_map.location(("modules", self.name))


@dataclass(eq=False)
class _Frame:
    """The root plan or one module instance: how its names map into the root plan's namespace."""

    address: str  # "" for the root plan
    source_map: SourceMap
    model: Any  # PlanFileModel or a ModuleFileModel
    mdef: _ModuleDef | None = None
    call: _Call | None = None
    key: str | None = None
    each_value: Any = None
    _calls: dict[str, _Call] | None = None
    #: provider block keys as written in this frame -> keys of the root plan's blocks
    provider_map: dict[str, str] = field(default_factory=dict)
    vars: dict[str, tuple[Any, bool]] = field(default_factory=dict)
    outs: dict[str, tuple[Any, bool]] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"{self.address}." if self.address else ""

    def describe(self) -> str:
        return f"module `{self.address}`" if self.address else "the plan"


@dataclass
class _Ctx:
    """Where a value being rewritten was written, and what `each` means there."""

    frame: _Frame
    base: FieldPath
    value: Any
    #: "keep": `each` stays for the engine (a resource with for_each); "call": `each` is the
    #: module call's key and value; None: `each` is not available
    each: str | None = None
    call: _Call | None = None
    call_key: str | None = None
    call_value: Any = None
    sensitive: bool = False

    def location(self, text: str) -> Location:
        path = (*self.base, *path_of(self.value, text)) if text else self.base
        return self.frame.source_map.location(path)


class ModuleSourceMap(SourceMap):
    """The root plan's source map, where the fields of a module's resources point into its file."""

    def __init__(self, root: SourceMap) -> None:
        super().__init__(root.file, root.marks)
        #: (section, root name) -> (the module's source map, its name there, instance, call site)
        self.redirects: dict[tuple[str, str], tuple[SourceMap, str, str, str]] = {}

    def location(self, path: FieldPath) -> Location:
        p = tuple(path)
        if len(p) >= 2:
            hit = self.redirects.get((str(p[0]), str(p[1])))
            if hit is not None:
                inner, local, address, site = hit
                loc = inner.location((p[0], local, *p[2:]))
                return Location(loc.file, loc.line, loc.column, f"{loc.field} in {address}, called at {site}")
        return super().location(path)


def _at_call(exc: ConfigError, call: _Call | None, key: str | None = None) -> ConfigError:
    """`exc` (located in a module file) with the call site added to its message."""
    if call is None or getattr(exc, "_module_site", False):
        return exc
    site = call.site
    address = module_address(call.frame.address, call.name, key)
    out = ConfigError(f"{exc.message} (in {address}, called at {_short(site)})", location=exc.location, hint=exc.hint)
    out._module_site = True  # type: ignore[attr-defined]  # wrapped once, at the innermost call
    return out


def _short(loc: Location) -> str:
    out = loc.file
    if loc.line is not None:
        out += f":{loc.line}"
        if loc.column is not None:
            out += f":{loc.column}"
    return out


class _Loader:
    """Reads module files once each and resolves sources against a plan's lock file."""

    def __init__(self, plan_path: Path) -> None:
        self.plan_path = plan_path
        self.lock = ModuleLock(plan_path)
        self.defs: dict[Path, _ModuleDef] = {}
        self.limits = InputLimits.from_env()

    def folder(self, call_spec: ModuleCallSpec, frame: _Frame, name: str) -> Path:
        where = frame.source_map.location(("modules", name, "source"))
        source = call_spec.source
        if is_git(source):
            return self.lock.folder(parse_git_source(source, where), where)
        if "://" in source:
            raise ConfigError(
                f"module source {source!r}: unknown scheme",
                location=where,
                hint="write a folder (`./modules/network`) or a git source (`git+https://...`)",
            )
        base = Path(frame.source_map.file).parent
        folder = (base / source).resolve() if not Path(source).is_absolute() else Path(source)
        if not (folder / MODULE_FILE).is_file():
            raise ConfigError(
                f"module `{name}`: no {MODULE_FILE} in {folder}",
                location=where,
                hint=f"`source` is a folder holding {MODULE_FILE}, relative to {frame.source_map.file}",
            )
        return folder

    def load(self, folder: Path) -> _ModuleDef:
        path = folder / MODULE_FILE
        got = self.defs.get(path)
        if got is not None:
            return got
        try:
            text = read_bounded(str(path), self.limits)
        except OSError as exc:
            raise ConfigError(f"cannot read module file: {exc.strerror}", location=Location(str(path))) from None
        except UnicodeDecodeError:
            raise ConfigError("module file is not UTF-8 text", location=Location(str(path))) from None
        data, source_map = parse_yaml(text, str(path))
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"a module file must be a mapping, not a {type(data).__name__}",
                location=source_map.location(()),
                hint="give it `variables:`, `resources:` and `outputs:`",
            )
        for key in data:
            if key in ROOT_ONLY:
                raise ConfigError(
                    f"`{key}:` belongs in the root plan, not in a module",
                    location=source_map.location((key,)),
                    hint="a module uses the providers, state and releases of the plan that calls it",
                )
            if key not in MODULE_KEYS:
                raise ConfigError(
                    f"unknown top-level key `{key}` in a module file",
                    location=source_map.location((key,)),
                    hint=did_you_mean(str(key), MODULE_KEYS) or "known keys: " + ", ".join(MODULE_KEYS),
                )
        data = {k: v for k, v in data.items() if v is not None}
        try:
            model = ModuleFileModel.model_validate(data)
        except ValidationError as exc:
            from cloudorch.planfile.load import _from_validation_error

            raise _from_validation_error(exc.errors()[0], source_map, len(exc.errors())) from None
        for section in ("variables", "outputs", "modules", *NAMED_SECTIONS):
            for name in getattr(model, section, None) or {}:
                if not _NAME_RE.match(str(name)):
                    raise ConfigError(
                        f"invalid name `{name}` in {section}",
                        location=source_map.location((section, name)),
                        hint="names start with a letter or `_` and hold letters, digits, `_` and `-`",
                    )
        mdef = _ModuleDef(path, model, source_map, text)
        self.defs[path] = mdef
        return mdef


# --------------------------------------------------------------------------- expansion


class _Expander:
    def __init__(
        self,
        model: PlanFileModel,
        source_map: SourceMap,
        path: Path,
        values: dict[str, Any],
        env: Mapping[str, str],
    ) -> None:
        self.root = _Frame("", source_map, model)
        self.loader = _Loader(path)
        self.values = values
        self.env = env
        self.busy: list[tuple[_Frame, str, str]] = []
        self.new_variables: dict[str, VariableSpec] = {}
        self.map = ModuleSourceMap(source_map)
        self.late_calls: dict[str, _Call] = {}
        self.depth_limit = 32

    # ----------------------------------------------------------------- calls and instances

    def calls(self, frame: _Frame) -> dict[str, _Call]:
        if frame._calls is None:
            try:
                self._make_calls(frame)
            except ConfigError as exc:
                raise _at_call(exc, frame.call, frame.key) from None
        assert frame._calls is not None
        return frame._calls

    def _make_calls(self, frame: _Frame) -> None:
        if frame._calls is None:
            frame._calls = {}
            depth = len(module_path(frame.address)) if frame.address else 0
            for name, spec in (frame.model.modules or {}).items():
                if depth >= self.depth_limit:
                    raise ConfigError(
                        f"modules nest more than {self.depth_limit} deep (at `{name}`)",
                        location=frame.source_map.location(("modules", name)),
                        hint="a module that calls itself never ends",
                    )
                if not _NAME_RE.match(name):
                    raise ConfigError(
                        f"invalid module name `{name}`",
                        location=frame.source_map.location(("modules", name)),
                        hint="names start with a letter or `_` and hold letters, digits, `_` and `-`",
                    )
                folder = self.loader.folder(spec, frame, name)
                mdef = self.loader.load(folder)
                call = _Call(name, spec, frame, mdef, None)
                frame._calls[name] = call
                self._check_inputs(call)
                call.keys = self._call_keys(call)
                items: list[tuple[str | None, Any]] = (
                    list(call.keys.items()) if call.keys is not None else [(None, None)]
                )
                for key, each_value in items:
                    if not self._enabled(call, key, each_value):
                        call.disabled.add(key)
                        continue
                    call.instances[key] = _Frame(
                        module_address(frame.address, name, key),
                        mdef.source_map,
                        mdef.model,
                        mdef,
                        call,
                        key,
                        each_value,
                        provider_map=self._provider_map(call, key, each_value),
                    )

    def _enabled(self, call: _Call, key: str | None, each_value: Any) -> bool:
        """`enabled:` of a module call for one instance: a bool, or a template known at load."""
        raw = call.spec.enabled
        if raw is None or isinstance(raw, bool):
            return raw is not False
        base: FieldPath = ("modules", call.name, "enabled")
        ctx = _Ctx(call.frame, base, raw, "call", call, key, each_value)
        value = self.known(self.rewrite(raw, ctx), ctx, "`enabled` of a module call")
        if not isinstance(value, bool):
            raise ConfigError(
                f"`enabled` of {module_address(call.frame.address, call.name, key)} must be true or false, "
                f"got {_type_of(value)} {value!r:.60}",
                location=call.frame.source_map.location(base),
                hint="write `enabled: true`/`false`, or a reference or expression known at load (var, env, each)",
            )
        return value

    def _provider_map(self, call: _Call, key: str | None, each_value: Any) -> dict[str, str]:
        """The caller's provider blocks, with the call's `providers:` (in the caller's terms) on top."""
        out = dict(call.frame.provider_map)
        declared = self.root.model.providers
        for inner, raw in call.spec.providers.items():
            base: FieldPath = ("modules", call.name, "providers", inner)
            where = call.frame.source_map.location(base)
            value = self.rewrite(raw, _Ctx(call.frame, base, raw, "call", call, key, each_value))
            if not isinstance(value, str) or _has_refs(value):
                raise ConfigError(
                    f"provider block of module `{call.name}` for `{inner}` must be known when the plan is loaded",
                    location=where,
                    hint="write a block key such as `aws.eu`, or build it from `each.key`",
                )
            target = call.frame.provider_map.get(value, value)
            if not _PROVIDER_KEY_RE.match(inner) or not _PROVIDER_KEY_RE.match(target):
                raise ConfigError(
                    f"invalid provider block key in `providers:` of module `{call.name}`: {inner!r} -> {target!r}",
                    location=where,
                    hint="map a key the module uses (`aws`) to a block of this plan (`aws.eu`)",
                )
            if inner.partition(".")[0] != target.partition(".")[0]:
                raise ConfigError(
                    f"module `{call.name}`: `{inner}` cannot use provider block `{target}` (another provider)",
                    location=where,
                    hint=f"map `{inner}` to a `{inner.partition('.')[0]}` block",
                )
            if "." in target and target not in declared:
                raise ConfigError(
                    f"module `{call.name}` uses provider block `{target}`, which the plan does not declare",
                    location=where,
                    hint=did_you_mean(target, list(declared)) or f"add it under `providers:`, e.g. `{target}: {{...}}`",
                )
            out[inner] = target
        return out

    def _check_inputs(self, call: _Call) -> None:
        declared = call.mdef.variables
        site = call.frame.source_map
        for key in call.spec.inputs:
            if key not in declared:
                raise ConfigError(
                    f"module `{call.name}` has no variable `{key}` (declared in {call.mdef.path})",
                    location=site.location(("modules", call.name, "inputs", key)),
                    hint=did_you_mean(key, list(declared))
                    or ("its variables: " + ", ".join(declared) if declared else "the module declares no variables"),
                )
        for name, spec in declared.items():
            if spec.required and name not in call.spec.inputs:
                where = call.mdef.source_map.location(("variables", name))
                raise ConfigError(
                    f"module `{call.name}` needs input `{name}`"
                    + (f" ({spec.description})" if spec.description else "")
                    + f", declared at {_short(where)}",
                    location=site.location(("modules", call.name, "inputs"))
                    if call.spec.inputs
                    else site.location(("modules", call.name)),
                    hint=f"add `{name}: ...` under `inputs:` of module `{call.name}`",
                )

    def _call_keys(self, call: _Call) -> dict[str, Any] | None:
        raw = call.spec.for_each
        if raw is None:
            return None
        base: FieldPath = ("modules", call.name, "for_each")
        where = call.frame.source_map.location(base)
        ctx = _Ctx(call.frame, base, raw)
        template = self.rewrite(raw, ctx)
        value = self.known(template, ctx, "the for_each of a module")
        return for_each_keys(value, f"module `{call.name}`", describe=lambda v: f"a {_type_of(v)}", location=where)

    def known(self, template: Any, ctx: _Ctx, what: str) -> Any:
        """A root-namespace template's value now (only `var` and `env` are known at load)."""
        from cloudorch.planfile.expressions import resolve

        def lookup(ref: Reference) -> Any:
            if ref.root == "var" and ref.path and str(ref.path[0]) in self.values:
                return navigate(self.values[str(ref.path[0])], ref.path[1:], ref.text)
            if ref.root == "env" and len(ref.path) == 1 and str(ref.path[0]) in self.env:
                return self.env[str(ref.path[0])]
            raise ExpressionError(f"{what} must be known before anything is created, and `{ref.text}` is not", ref.text)

        try:
            return resolve(template, lookup)
        except ExpressionError as exc:
            raise ConfigError(
                str(exc), location=ctx.location(""), hint="build it from `var` and `env` values"
            ) from None

    # ----------------------------------------------------------------- values of inputs and outputs

    def _enter(self, frame: _Frame, kind: str, name: str, site: Location) -> None:
        if any(f is frame and k == kind and n == name for f, k, n in self.busy):
            chain = " -> ".join(f"{_label(f, k, n)}" for f, k, n in self.busy) + f" -> {_label(frame, kind, name)}"
            raise ConfigError(
                f"modules refer to each other in a cycle: {chain}",
                location=site,
                hint="a module's output cannot feed, through other modules, the input it is built from",
            )
        self.busy.append((frame, kind, name))

    def var_value(self, frame: _Frame, name: str) -> tuple[Any, bool]:
        """The template a module variable stands for in the root namespace, and if it is sensitive."""
        got = frame.vars.get(name)
        if got is not None:
            return got
        call = frame.call
        assert call is not None and frame.mdef is not None
        spec = frame.mdef.variables[name]
        base: FieldPath = ("modules", call.name, "inputs", name)
        site = call.frame.source_map.location(base)
        self._enter(frame, "var", name, site)
        try:
            if name in call.spec.inputs:
                raw = call.spec.inputs[name]
                ctx = _Ctx(call.frame, base, raw, "call", call, frame.key, frame.each_value)
                template = self.rewrite(raw, ctx)
                sensitive = spec.sensitive or ctx.sensitive
                self._check_type(call, name, spec, template, site)
            else:
                template = _escape(spec.default)
                sensitive = spec.sensitive
        finally:
            self.busy.pop()
        if spec.sensitive and not _has_refs(template):
            # a literal secret becomes a root variable, so every sensitivity rule of the plan sees it
            root_name = f"{frame.address}.{name}"
            self.new_variables[root_name] = spec.model_copy(update={"default": None, "description": spec.description})
            value = _unescape(template)
            self.values[root_name] = value
            remember_secret(value)
            template = _render_ref("var", [(root_name, "index")])
        frame.vars[name] = (template, sensitive)
        return template, sensitive

    def _check_type(self, call: _Call, name: str, spec: VariableSpec, template: Any, site: Location) -> None:
        if spec.type == "any":
            return
        if isinstance(template, str) and _has_refs(template):
            only = parse_template(template)
            if len(only) != 1 or not isinstance(only[0], Reference) or only[0].root not in ("var", "env"):
                return  # known only later; the provider's types check the resulting properties
            try:
                value = self.known(template, _Ctx(call.frame, ("modules", call.name, "inputs", name), template), "")
            except ConfigError:
                return
        elif _has_refs(template):
            return
        else:
            value = _unescape(template)
        if not matches(spec.type, value):
            shown = "" if spec.sensitive else f": {value!r}"[:80]
            raise ConfigError(
                f"input `{name}` of module `{call.name}` must be a {spec.type}, got a {_type_of(value)}{shown}",
                location=site,
                hint=f"variable `{name}` is declared `type: {spec.type}` in {call.mdef.path}",
            )

    def out_value(self, frame: _Frame, name: str, site: Location, ref_text: str) -> tuple[Any, bool]:
        got = frame.outs.get(name)
        if got is not None:
            return got
        assert frame.mdef is not None
        outputs = frame.mdef.model.outputs
        if name not in outputs:
            raise ConfigError(
                f"`{ref_text}`: {frame.describe()} has no output `{name}` (see {frame.mdef.path})",
                location=site,
                hint=did_you_mean(name, list(outputs)) or ("its outputs: " + ", ".join(outputs) if outputs else None),
            )
        out = outputs[name]
        self._enter(frame, "output", name, site)
        try:
            ctx = _Ctx(frame, ("outputs", name), out.value)
            try:
                template = self.rewrite(out.value, ctx)
            except ConfigError as exc:
                raise _at_call(exc, frame.call, frame.key) from None
        finally:
            self.busy.pop()
        if ctx.sensitive and not out.sensitive:
            raise _at_call(
                ConfigError(
                    f"output `{name}` is built from a sensitive value but is not declared sensitive",
                    location=frame.source_map.location(("outputs", name)),
                    hint=f"add `sensitive: true` to output `{name}` (write it as `{{value: ..., sensitive: true}}`)",
                ),
                frame.call,
                frame.key,
            )
        frame.outs[name] = (template, out.sensitive or ctx.sensitive)
        return frame.outs[name]

    # ----------------------------------------------------------------- rewriting

    def rewrite(self, value: Any, ctx: _Ctx) -> Any:
        """`value` (a template in `ctx.frame`'s namespace) as a template in the root namespace."""
        if isinstance(value, str):
            if "${" not in value:
                return value
            return self._rewrite_str(value, ctx)
        if isinstance(value, dict):
            changed = False
            new: dict[Any, Any] = {}
            for k, v in value.items():
                r = self.rewrite(v, ctx)
                changed = changed or r is not v
                new[k] = r
            return new if changed else value
        if isinstance(value, list):
            items = [self.rewrite(v, ctx) for v in value]
            return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
        return value

    def _rewrite_str(self, s: str, ctx: _Ctx) -> Any:
        try:
            parts = parse_template(s)
        except ExpressionError as exc:
            raise ConfigError(
                str(exc),
                location=ctx.location(s),
                hint="references look like `${var.name}` or `${resources.web.arn}`; write `$${` for a literal `${`",
            ) from None
        if not ctx.frame.address and not any(_root_frame_rewrites(r, ctx) for p in parts for r in _refs_in(p)):
            return s  # the root plan's own references stay as written
        if all(isinstance(p, str) for p in parts):
            return s
        if len(parts) == 1:
            only = parts[0]
            return self._ref(only, ctx) if isinstance(only, Reference) else self._expression(only, ctx)
        out: list[str] = []
        for p in parts:
            if isinstance(p, str):
                out.append(p.replace("${", "$${"))
                continue
            if not isinstance(p, Reference):
                out.append(self._expression(p, ctx))
                continue
            got = self._ref(p, ctx)
            if isinstance(got, str):
                out.append(got)
            elif got is None or isinstance(got, bool | int | float):
                out.append(_render(got))
            elif _has_refs(got):
                raise ConfigError(
                    f"`{p.text}` is a list or map holding references: it cannot be part of a longer string",
                    location=ctx.location(p.text),
                    hint=f"use `{p.text}` as the whole value, or refer to one item of it",
                )
            else:
                out.append(_render(_unescape(got)).replace("${", "$${"))
        return "".join(out)

    def _expression(self, expr: Any, ctx: _Ctx) -> str:
        """A `${...}` expression (any template part with `refs` and `source(bound)`, such as a CEL
        expression) with each reference it reads rewritten: a reference stays a reference, a
        literal becomes a literal in the expression (JSON is valid CEL for them)."""
        bodies: list[str] = []
        for ref in expr.refs:
            got = self._ref(ref, ctx)
            if isinstance(got, str) and _is_single_ref(got):
                bodies.append(got[2:-1])
            elif _has_refs(got):
                raise ConfigError(
                    f"`{ref.text}` is built from other values, and cannot be used inside an expression here",
                    location=ctx.location(expr.text),
                    hint="pass the value through a module output or variable that is one reference",
                )
            else:
                bodies.append(json.dumps(_unescape(got)))
        return "${" + str(expr.source(lambda i: bodies[i])) + "}"

    def _ref(self, ref: Reference, ctx: _Ctx) -> Any:
        frame = ctx.frame
        root = ref.root
        if root == "modules":
            return self._modules_ref(ref, ctx)
        if root == "each" and (frame.address or ctx.each == "call"):
            return self._each(ref, ctx)
        if not frame.address or root in _PASS_THROUGH:
            return self._bind_inner(ref, ctx)
        if not ref.path:
            raise self._error(ctx, ref, f"`{ref.text}` is incomplete", f"write e.g. `${{{root}.NAME}}`")
        head = str(ref.path[0])
        assert frame.mdef is not None
        if root == "var":
            if head not in frame.mdef.variables:
                raise self._error(
                    ctx,
                    ref,
                    f"`{ref.text}` refers to undeclared variable `{head}` of the module",
                    did_you_mean(head, list(frame.mdef.variables))
                    or f"declare it under `variables:` in {frame.mdef.path}",
                )
            template, sensitive = self.var_value(frame, head)
            ctx.sensitive = ctx.sensitive or sensitive
            return self._navigate(template, ref, 1, ctx)
        if root == "each":
            return self._each(ref, ctx)
        section = next((s for s, r in NAMED_SECTIONS.items() if r == root), None)
        if section is not None:
            entries = frame.mdef.section(section)
            if head not in entries:
                raise self._error(
                    ctx,
                    ref,
                    f"`{ref.text}` refers to `{head}`, which is not under `{section}:` of the module",
                    did_you_mean(head, list(entries)) or f"declare it under `{section}:` in {frame.mdef.path}",
                )
            steps = _steps(ref)
            steps[0] = (frame.prefix + head, "index")
            return self._bind_steps(root, steps, ref, ctx)
        return self._bind_inner(ref, ctx)  # a root another part of cloudorch owns: keep it

    def _each(self, ref: Reference, ctx: _Ctx) -> Any:
        if ctx.each == "keep":
            return ref.text
        if ctx.each != "call" or ctx.call is None or ctx.call.keys is None:
            raise self._error(
                ctx,
                ref,
                f"`{ref.text}` cannot be used here",
                "`each` is only available in a resource or module call with `for_each`",
            )
        head = str(ref.path[0]) if ref.path else ""
        if head == "key" and len(ref.path) == 1:
            return _escape(ctx.call_key)
        if head == "value":
            try:
                return _escape(navigate(ctx.call_value, ref.path[1:], ref.text))
            except ExpressionError as exc:
                raise self._error(ctx, ref, str(exc), "check the for_each value of the module call") from None
        raise self._error(
            ctx, ref, f"`{ref.text}`: `each` has only `key` and `value`", "write `${each.key}` or `${each.value}`"
        )

    def _modules_ref(self, ref: Reference, ctx: _Ctx) -> Any:
        frame = ctx.frame
        calls = self.calls(frame)
        if not ref.path:
            raise self._error(ctx, ref, f"`{ref.text}` is incomplete", "write e.g. `${modules.NAME.OUTPUT}`")
        head = str(ref.path[0])
        call = calls.get(head)
        if call is None:
            raise self._error(
                ctx,
                ref,
                f"`{ref.text}` refers to module `{head}`, which is not under `modules:` of {frame.describe()}",
                did_you_mean(head, list(calls)) or "declare it under `modules:`",
            )
        if 1 in ref.dynamic:
            inner = ref.inner_refs()[ref.dynamic.index(1)]
            key_value = self._ref(inner, ctx)
            if ctx.each == "keep" and key_value == "${each.key}" and len(ref.path) > 2:
                return self._late(call, ref, ctx)
            if not isinstance(key_value, str) or _has_refs(key_value):
                raise self._error(
                    ctx,
                    ref,
                    f"`{ref.text}`: the module instance key `{inner.text}` must be known when the plan is loaded",
                    "inside a resource with for_each, write the key literally, or move the resource into the module",
                )
            key: str | None = _unescape(key_value)
            rest = ref.path[2:]
        elif 1 in ref.indexes:
            key = str(ref.path[1])
            rest = ref.path[2:]
        else:
            key = None
            rest = ref.path[1:]
        site = ctx.location(ref.text)
        if call.keys is None and key is not None:
            raise self._error(
                ctx,
                ref,
                f"`{ref.text}`: module `{head}` has no for_each, so it has no instance `{key}`",
                f"write `${{modules.{head}.OUTPUT}}`",
            )
        if call.keys is not None and key is None:
            if not rest:  # the whole module: a map of instance key -> outputs
                whole: dict[str, Any] = {}
                for k, inst in call.instances.items():
                    whole[str(k)] = self._all_outputs(inst, site, ref, ctx)
                return whole
            raise self._error(
                ctx,
                ref,
                f"`{ref.text}`: module `{head}` has for_each; say which instance",
                f"use `${{modules.{head}[{next(iter(call.keys), 'KEY')}].OUTPUT}}`",
            )
        if key in call.disabled:
            raise self._error(
                ctx,
                ref,
                f"`{ref.text}`: {module_address(frame.address, head, key)} is disabled (`enabled:` is false)",
                "read it only when it is enabled, or give a value that does not depend on it",
            )
        if key not in call.instances:
            raise self._error(
                ctx,
                ref,
                f"`{ref.text}`: module `{head}` has no instance `{key}`",
                did_you_mean(str(key), [str(k) for k in call.instances])
                or "its keys: " + ", ".join(map(str, call.instances)),
            )
        inst = call.instances[key]
        if not rest:
            return self._all_outputs(inst, site, ref, ctx)
        template, sensitive = self.out_value(inst, str(rest[0]), site, ref.text)
        ctx.sensitive = ctx.sensitive or sensitive
        consumed = len(ref.path) - len(rest) + 1
        return self._navigate(template, ref, consumed, ctx)

    def _late(self, call: _Call, ref: Reference, ctx: _Ctx) -> str:
        """`${modules.net[each.key].out}` in a resource with for_each: the instance is known only
        per resource instance, so it is left for `resolve_late` (with the call's full address)."""
        if call.keys is None:
            raise self._error(ctx, ref, f"`{ref.text}`: module `{call.name}` has no for_each", None)
        name = str(ref.path[2])
        outputs = call.mdef.model.outputs
        if name not in outputs:
            raise self._error(
                ctx,
                ref,
                f"`{ref.text}`: module `{call.name}` has no output `{name}` (see {call.mdef.path})",
                did_you_mean(name, list(outputs)),
            )
        address = module_address(call.frame.address, call.name, None)
        self.late_calls[address] = call
        steps = _steps(ref)
        steps[0] = (address, "index")
        return self._bind_steps("modules", steps, ref, ctx)

    def late_table(self) -> dict[str, dict[str, Any]]:
        """Outputs of the instances `resolve_late` may need: instance address -> name -> template."""
        table: dict[str, dict[str, Any]] = {}
        for call in self.late_calls.values():
            for inst in call.instances.values():
                table[inst.address] = {k: v[0] for k, v in inst.outs.items()}
        return table

    def _all_outputs(self, inst: _Frame, site: Location, ref: Reference, ctx: _Ctx) -> dict[str, Any]:
        assert inst.mdef is not None
        out: dict[str, Any] = {}
        for name in inst.mdef.model.outputs:
            template, sensitive = self.out_value(inst, name, site, ref.text)
            ctx.sensitive = ctx.sensitive or sensitive
            out[name] = template
        return out

    def _navigate(self, template: Any, ref: Reference, start: int, ctx: _Ctx) -> Any:
        """`template` (a root-namespace value) followed along `ref.path[start:]`."""
        steps = _steps(ref)[start:]
        value = template
        for i, (step, kind) in enumerate(steps):
            if kind == "dynamic":
                inner = self._ref(_parse_inner(str(step)), ctx)
                if isinstance(inner, str) and _has_refs(inner):
                    if isinstance(value, str) and _is_single_ref(value):
                        # `${var.subnets[each.key]}` inside a resource with for_each: keep `each` for the engine
                        return self._extend(value, steps[i:], ctx, ref)
                    raise self._error(
                        ctx,
                        ref,
                        f"`{ref.text}`: `{step}` is not known when the plan is loaded",
                        "index with a literal key here",
                    )
                step, kind = _unescape(inner), "index"
            if isinstance(value, str) and "${" in value:
                if _is_single_ref(value):
                    return self._extend(value, [(step, kind), *steps[i + 1 :]], ctx, ref)
                raise self._error(ctx, ref, f"`{ref.text}`: cannot take {step!r} of a string", None)
            try:
                value = navigate(value, (step,), ref.text)
            except ExpressionError as exc:
                raise self._error(ctx, ref, str(exc), "check the value the module was given") from None
        return value

    def _extend(self, single: str, more: list[tuple[str | int, str]], ctx: _Ctx, ref: Reference) -> str:
        """A one-reference template with more path steps appended."""
        inner = parse_template(single)[0]
        assert isinstance(inner, Reference)
        return self._bind_steps(inner.root, [*_steps(inner), *more], ref, ctx, rewrite_dynamic=False)

    def _bind_inner(self, ref: Reference, ctx: _Ctx) -> str:
        if not ref.dynamic:
            return ref.text
        return self._bind_steps(ref.root, _steps(ref), ref, ctx)

    def _bind_steps(
        self, root: str, steps: list[tuple[str | int, str]], ref: Reference, ctx: _Ctx, *, rewrite_dynamic: bool = True
    ) -> str:
        """Render a reference; a dynamic index (`[each.key]`, `[var.k]`) is rewritten in `ctx`."""
        out: list[tuple[str | int, str]] = []
        for step, kind in steps:
            if kind == "dynamic" and rewrite_dynamic:
                got = self._ref(_parse_inner(str(step)), ctx)
                if isinstance(got, str) and _is_single_ref(got):
                    inner = parse_template(got)[0]
                    assert isinstance(inner, Reference)
                    if inner.dynamic or inner.root not in ("each", "var"):
                        raise self._error(
                            ctx,
                            ref,
                            f"`{ref.text}`: the key `{step}` must be a plain value or `each`/`var` reference",
                            None,
                        )
                    out.append((inner.text[2:-1], "dynamic"))
                elif isinstance(got, str | int) and not isinstance(got, bool):
                    out.append((_unescape(got), "index"))
                else:
                    raise self._error(ctx, ref, f"`{ref.text}`: `{step}` is not a key or index", None)
            else:
                out.append((step, kind))
        return _render_ref(root, out)

    def _error(self, ctx: _Ctx, ref: Reference, message: str, hint: str | None) -> ConfigError:
        exc = ConfigError(message, location=ctx.location(ref.text), hint=hint)
        frame = ctx.frame
        return _at_call(exc, frame.call, frame.key) if frame.address else exc

    # ----------------------------------------------------------------- the whole plan

    def digest(self) -> str:
        h = hashlib.sha256()
        for path in sorted(self.loader.defs):
            h.update(f"{path}\0{self.loader.defs[path].text}\0".encode())
        h.update(json.dumps(self.loader.lock.entries, sort_keys=True).encode())
        return h.hexdigest()

    def run(self) -> tuple[PlanFileModel, SourceMap]:
        model = self.root.model
        resources: dict[str, ResourceSpec] = {}
        for name, spec in model.resources.items():
            resources[name] = self._root_resource(name, spec)
        outputs = {}
        for name, out in model.outputs.items():
            if not any("modules" in s for s in strings_in(out.value) if "${" in s):
                outputs[name] = out
                continue
            ctx = _Ctx(self.root, ("outputs", name), out.value)
            value = self.rewrite(out.value, ctx)
            if ctx.sensitive and not out.sensitive:
                raise ConfigError(
                    f"output `{name}` is built from a sensitive module output or input but is not declared sensitive",
                    location=self.root.source_map.location(("outputs", name)),
                    hint=f"add `sensitive: true` to output `{name}` (write it as `{{value: ..., sensitive: true}}`)",
                )
            outputs[name] = out.model_copy(update={"value": value})
        sections: dict[str, dict[str, Any]] = {s: {} for s in NAMED_SECTIONS if s in type(model).model_fields}
        sections["resources"] = resources
        for call in self.calls(self.root).values():
            for inst in call.instances.values():
                self._instance(inst, sections)
        for section in sections:
            if section != "resources":
                sections[section] = {**(getattr(model, section) or {}), **sections[section]}
        update: dict[str, Any] = {**sections, "outputs": outputs}
        if self.new_variables:
            update["variables"] = {**model.variables, **self.new_variables}
        self.loader.lock.save()
        return model.model_copy(update=update), self.map

    def _resource_fields(self, frame: _Frame, name: str, spec: ResourceSpec) -> dict[str, Any]:
        """Every template field of a resource (properties, for_each, and any field the plan language
        adds, such as a condition) rewritten from `frame`; only the changed ones."""
        base: FieldPath = ("resources", name)
        update: dict[str, Any] = {}
        for fname in type(spec).model_fields:
            if fname in _LITERAL_RESOURCE_FIELDS:
                continue
            value = getattr(spec, fname)
            if isinstance(value, BaseModel) or value is None:
                continue
            # `each` is the resource's own in its instances' fields, never in for_each itself
            each = "keep" if spec.for_each is not None and fname != "for_each" else None
            new = self.rewrite(value, _Ctx(frame, (*base, fname), value, each))
            if new is not value:
                update[fname] = new
        return update

    def _root_resource(self, name: str, spec: ResourceSpec) -> ResourceSpec:
        if not any(
            "modules" in s
            for f in type(spec).model_fields
            if f not in _LITERAL_RESOURCE_FIELDS
            for s in strings_in(getattr(spec, f))
            if "${" in s
        ):
            return spec
        update = self._resource_fields(self.root, name, spec)
        return spec.model_copy(update=update) if update else spec

    def _instance(self, frame: _Frame, sections: dict[str, dict[str, Any]]) -> None:
        assert frame.mdef is not None and frame.call is not None
        site = _short(frame.call.site)
        for var in frame.mdef.variables:  # every input is checked, used or not
            self.var_value(frame, var)
        for section, out in sections.items():
            entries = frame.mdef.section(section)
            for name, entry in entries.items():
                root_name = frame.prefix + name
                self.map.redirects[(section, root_name)] = (frame.source_map, name, frame.address, site)
                out[root_name] = (
                    self._module_resource(frame, name, entry)
                    if section == "resources"
                    else self._module_entry(frame, section, name, entry)
                )
        for name in frame.mdef.model.outputs:  # check every output, used or not
            self.out_value(frame, name, frame.call.site, f"module output {name}")
        for call in self.calls(frame).values():
            for inst in call.instances.values():
                self._instance(inst, sections)

    def _module_resource(self, frame: _Frame, name: str, spec: ResourceSpec) -> ResourceSpec:
        base: FieldPath = ("resources", name)
        update = self._resource_fields(frame, name, spec)
        assert frame.mdef is not None
        local = frame.mdef.section("resources")
        deps: list[str] = []
        for i, dep in enumerate(spec.depends_on):
            if dep not in local:
                raise _at_call(
                    ConfigError(
                        f"resource `{name}` depends on `{dep}`, which is not a resource of this module",
                        location=frame.source_map.location((*base, "depends_on", i)),
                        hint=did_you_mean(dep, list(local)) or "depends_on names resources of the same module",
                    ),
                    frame.call,
                    frame.key,
                )
            deps.append(frame.prefix + dep)
        update["depends_on"] = deps
        written = spec.provider or spec.type.partition(".")[0]
        provider = frame.provider_map.get(written, spec.provider)
        if provider != spec.provider:
            update["provider"] = provider
        if provider is not None and "." in provider and provider not in self.root.model.providers:
            raise _at_call(
                ConfigError(
                    f"resource `{name}` uses provider block `{provider}`, which the plan does not declare",
                    location=frame.source_map.location((*base, "provider")),
                    hint=f"declare `{provider}` under `providers:` of the plan, or map it with `providers:` "
                    "on the module call",
                ),
                frame.call,
                frame.key,
            )
        return spec.model_copy(update=update)

    def _module_entry(self, frame: _Frame, section: str, name: str, entry: Any) -> Any:
        """An entry of another named section (`data`, `locals`): its strings rewritten, same shape."""
        base: FieldPath = (section, name)
        if isinstance(entry, BaseModel):
            data = entry.model_dump(exclude_unset=True)
            has_for_each = data.get("for_each") is not None
            new = self.rewrite(data, _Ctx(frame, base, data, "keep" if has_for_each else None))
            return entry if new is data else entry.model_copy(update=new)
        return self.rewrite(entry, _Ctx(frame, base, entry))


def expand_modules(
    model: PlanFileModel,
    source_map: SourceMap,
    path: Path,
    values: dict[str, Any],
    env: Mapping[str, str],
) -> tuple[PlanFileModel, SourceMap, str, dict[str, dict[str, Any]]]:
    """The plan with every module instance's resources joined under module addresses.

    `values` (the chosen variable values) gains a root variable per sensitive module variable
    given a literal value, so the plan's sensitivity rules see it. The third item is a digest of
    the module files used (see `PlanSpec.modules_digest`), the fourth the outputs `resolve_late`
    needs (see `PlanSpec.module_outputs`). A plan without `modules:` is returned as it is.
    """
    if not model.modules:
        return model, source_map, "", {}
    expander = _Expander(model, source_map, path, values, env)
    model, new_map = expander.run()
    return model, new_map, expander.digest(), expander.late_table()


def resolve_late(table: Mapping[str, Mapping[str, Any]], value: Any) -> Any:
    """`value` (a resource instance's properties, `each` bound) with every remaining
    `${modules["module.net"]["eu"].out}` replaced by that instance's output template.

    Raises ExpressionError when the instance or a path into the output does not exist.
    """
    if isinstance(value, str):
        if "${" not in value or "modules" not in value:
            return value
        parts = parse_template(value)
        if not any(isinstance(p, Reference) and p.root == "modules" for p in parts):
            return value
        if len(parts) == 1 and isinstance(parts[0], Reference):
            return _late_value(table, parts[0])
        out: list[str] = []
        for p in parts:
            if isinstance(p, str):
                out.append(p.replace("${", "$${"))
            elif not isinstance(p, Reference) or p.root != "modules":
                out.append(p.text)
            else:
                got = _late_value(table, p)
                if not isinstance(got, str) and _has_refs(got):
                    raise ExpressionError(f"`{p.text}` is a list or map holding references", p.text)
                out.append(got if isinstance(got, str) else _render(_unescape(got)).replace("${", "$${"))
        return "".join(out)
    if isinstance(value, dict):
        new = {k: resolve_late(table, v) for k, v in value.items()}
        return new if any(new[k] is not value[k] for k in value) else value
    if isinstance(value, list):
        items = [resolve_late(table, v) for v in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value


def _late_value(table: Mapping[str, Mapping[str, Any]], ref: Reference) -> Any:
    if len(ref.path) < 3:
        raise ExpressionError(f"`{ref.text}` names no module output", ref.text)
    address = f"{ref.path[0]}[{ref.path[1]}]"
    outputs = table.get(address)
    if outputs is None:
        raise ExpressionError(f"`{ref.text}`: there is no module instance `{address}`", ref.text)
    value = outputs[str(ref.path[2])]
    steps = _steps(ref)[3:]
    for i, (step, _kind) in enumerate(steps):
        if isinstance(value, str) and _is_single_ref(value):
            inner = parse_template(value)[0]
            assert isinstance(inner, Reference)
            return _render_ref(inner.root, [*_steps(inner), *steps[i:]])
        value = navigate(value, (step,), ref.text)
    return value


# --------------------------------------------------------------------------- helpers


def _label(frame: _Frame, kind: str, name: str) -> str:
    where = frame.address or "plan"
    return f"{where} input `{name}`" if kind == "var" else f"{where} output `{name}`"


def _refs_in(part: Any) -> list[Reference]:
    """The references of one template part: itself, those an expression reads, none for text."""
    if isinstance(part, Reference):
        return [part]
    return [] if isinstance(part, str) else list(getattr(part, "refs", ()))


def _root_frame_rewrites(ref: Reference, ctx: _Ctx) -> bool:
    """Whether a reference written in the root plan changes: `modules`, and `each` of a module call."""
    roots = {"modules", "each"} if ctx.each == "call" else {"modules"}
    return ref.root in roots or (bool(ref.dynamic) and any(r.root in roots for r in ref.inner_refs()))


def _steps(ref: Reference) -> list[tuple[str | int, str]]:
    return [
        (p, "dynamic" if i in ref.dynamic else "index" if i in ref.indexes else "dot") for i, p in enumerate(ref.path)
    ]


def _render_ref(root: str, steps: list[tuple[str | int, str]]) -> str:
    out = ["${", root]
    for step, kind in steps:
        if kind == "dynamic":
            out.append(f"[{step}]")
        elif isinstance(step, int):
            out.append(f"[{step}]" if kind == "index" else f".{step}")
        elif kind == "dot" and _PLAIN_STEP.match(step):
            out.append(f".{step}")
        else:
            out.append(f"[{json.dumps(step)}]")
    out.append("}")
    return "".join(out)


def _parse_inner(text: str) -> Reference:
    part = parse_template("${" + text + "}")[0]
    assert isinstance(part, Reference)
    return part


def _is_single_ref(s: str) -> bool:
    parts = parse_template(s)
    return len(parts) == 1 and isinstance(parts[0], Reference)


def _has_refs(value: Any) -> bool:
    """True if a template holds a reference or an expression (an escaped `$${` is literal text)."""
    return any(not isinstance(p, str) for s in strings_in(value) if "${" in s for p in parse_template(s))


def _escape(value: Any) -> Any:
    from cloudorch.planfile.expressions import escape

    return escape(value)


def _unescape(value: Any) -> Any:
    """A template without references as the value it stands for (`$${` back to `${`)."""
    if isinstance(value, str):
        return value.replace("$${", "${") if "$${" in value else value
    if isinstance(value, dict):
        return {k: _unescape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    return value
