"""The one registry of everything pluggable: providers, grader types, searches, executors and job
kinds.

    from iro_blackbox.registry import PROVIDERS
    PROVIDERS.register("mine", MyProvider)          # at run time (tests, notebooks)
    factory = PROVIDERS.get("hf")                   # ConfigError naming the choices if unknown

Each kind has an entry-point group. iro-bb's own providers, graders, searches and job kinds are
declared in its pyproject.toml in exactly those groups, the way a third-party package declares its
own:

    [project.entry-points."iro_blackbox.providers"]
    mine = "my_package.provider:MyProvider"

Rules:
- An entry point is loaded the first time its name is asked for, and what it loads is checked
  against the protocol of its kind (a provider has extend/describe/aclose, a search is an async
  function taking (examples, provider, scorer, params, ...), ...): a ConfigError names the entry
  point and what is missing.
- Two entry points of one name (from two installed packages) are an error when the name is asked
  for, unless exactly one of them says it overrides the other by ending its name in `.override`:

      [project.entry-points."iro_blackbox.providers"]
      "openai.override" = "my_package.provider:BetterOpenAI"    # replaces iro-bb's `openai`

- A name registered at run time (`register`) wins over an entry point of the same name, but
  shadowing an entry point needs `register(name, obj, override=True)`.
- `use_plugins("own")` (or the environment variable IRO_BB_PLUGINS=own, read at each discovery)
  makes every registry read only iro-bb's own entry points: what any other installed package
  declares is ignored. iro-bb's tests run this way; `use_plugins("all")` (the default) reads all.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, Literal, TypeVar

from .errors import ConfigError

T = TypeVar("T")

OWN_DIST = "iro-bb"  # the distribution whose entry points are iro-bb's own
OVERRIDE = ".override"  # an entry-point name ending in this replaces the plain name
PLUGINS_ENV = "IRO_BB_PLUGINS"  # "all" (default) or "own"
PluginScope = Literal["all", "own"]

_scope: PluginScope | None = None  # set by use_plugins(); None: the environment decides

Check = Callable[[Any], str | None]  # a protocol check: None when the object follows it


def use_plugins(scope: PluginScope | None) -> None:
    """Read every installed package's entry points ("all") or only iro-bb's own ("own"); None
    goes back to the environment variable IRO_BB_PLUGINS. Every registry reads them again."""
    global _scope
    if scope not in ("all", "own", None):
        raise ConfigError(f"plugin scope must be 'all' or 'own', got {scope!r}")
    _scope = scope
    for reg in ALL:
        reg.refresh()


def plugin_scope() -> PluginScope:
    """Which entry points the registries read now: "all" or "own"."""
    if _scope is not None:
        return _scope
    env = os.environ.get(PLUGINS_ENV, "all").strip().lower() or "all"
    if env not in ("all", "own"):
        raise ConfigError(f"{PLUGINS_ENV} must be 'all' or 'own', got {env!r}")
    return env  # type: ignore[return-value]


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) or getattr(dist, "metadata", {}).get("Name", "")
    return str(name or "?").lower().replace("_", "-")


def _where(ep: EntryPoint) -> str:
    return f"entry point '{ep.name} = {ep.value}' of package {_dist_name(ep)}"


class Registry(Generic[T]):
    """Named plug-ins of one kind: registered objects and (lazily loaded) entry points."""

    def __init__(self, what: str, group: str, check: Check | None = None):
        self.what = what  # "provider", "grader type", ... (for messages)
        self.group = group  # the entry-point group
        self._check = check  # what a loaded object must follow (None when it does)
        self._items: dict[str, T] = {}
        self._registered: set[str] = set()  # names given by register(), not entry points
        self._entry_points: dict[str, list[EntryPoint]] | None = None

    def _eps(self) -> dict[str, list[EntryPoint]]:
        """Entry points by the name they register (override ones first)."""
        if self._entry_points is None:
            own = plugin_scope() == "own"
            found: dict[str, list[EntryPoint]] = {}
            for ep in entry_points(group=self.group):
                if own and _dist_name(ep) != OWN_DIST:
                    continue
                name = ep.name.removesuffix(OVERRIDE) if ep.name.endswith(OVERRIDE) else ep.name
                found.setdefault(name, []).append(ep)
            for eps in found.values():
                eps.sort(key=lambda e: not e.name.endswith(OVERRIDE))
            self._entry_points = found
        return self._entry_points

    def _entry_point(self, name: str) -> EntryPoint:
        """The one entry point that provides `name`; ConfigError on an unresolved duplicate."""
        eps = self._eps()[name]
        overrides = [e for e in eps if e.name.endswith(OVERRIDE)]
        plain = [e for e in eps if not e.name.endswith(OVERRIDE)]
        if len(overrides) == 1:
            return overrides[0]
        clash = overrides if overrides else plain
        if len(clash) > 1:
            raise ConfigError(
                f"{self.what} '{name}' is declared more than once: "
                + "; ".join(_where(e) for e in clash)
                + f". Uninstall one, or name the one that should win '{name}{OVERRIDE}'"
                + (" (only one may)" if overrides else "")
            )
        return plain[0]

    def register(self, name: str, obj: T, *, override: bool = False) -> None:
        """Register `obj` under `name` at run time (checked like a loaded entry point). A name an
        entry point provides is only replaced with override=True."""
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"a {self.what} needs a non-empty name, got {name!r}")
        if not override and name not in self._registered and name in self._eps():
            raise ConfigError(
                f"{self.what} '{name}' is provided by "
                + "; ".join(_where(e) for e in self._eps()[name])
                + ": pass override=True to replace it"
            )
        self._accept(name, obj, "registered")
        self._items[name] = obj
        self._registered.add(name)

    def unregister(self, name: str) -> None:
        """Forget a name registered at run time (entry points stay)."""
        self._items.pop(name, None)
        self._registered.discard(name)

    def refresh(self) -> None:
        """Read the entry points again (after installing a plug-in into a running process, or
        changing the plugin scope). What was registered at run time stays."""
        self._entry_points = None
        self._items = {k: v for k, v in self._items.items() if k in self._registered}

    def names(self) -> list[str]:
        return sorted(set(self._items) | set(self._eps()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._items or name in self._eps())

    def get(self, name: str) -> T:
        """The object registered as `name`; ConfigError naming the choices when there is none,
        naming the entry point when it cannot be loaded or does not follow its kind's protocol."""
        if isinstance(name, str) and name in self._items:
            return self._items[name]
        if not isinstance(name, str) or name not in self._eps():
            raise ConfigError(
                f"unknown {self.what} {name!r}: choose one of {', '.join(self.names()) or 'none'}"
            )
        ep = self._entry_point(name)
        try:
            obj = ep.load()
        except Exception as e:  # a broken plug-in: say which, never a traceback
            raise ConfigError(
                f"cannot load {self.what} '{name}' from {ep.value} ({type(e).__name__}: {e})"
            ) from None
        self._accept(name, obj, _where(ep))
        self._items[name] = obj
        return obj

    def _accept(self, name: str, obj: Any, source: str) -> None:
        problem = self._check(obj) if self._check is not None else None
        if problem:
            raise ConfigError(
                f"{self.what} '{name}' ({source}) does not follow the {self.what} protocol: "
                f"{problem} (got {obj!r})"
            )


# -- the protocol of each kind ------------------------------------------------------------------
def _binds(fn: Any, *args: Any, **kwargs: Any) -> str | None:
    """None when `fn` can be called with these arguments (by its signature), else why not."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None  # a builtin without a signature: trust it
    try:
        sig.bind(*args, **kwargs)
    except TypeError as e:
        return f"its signature {sig} does not take {_shape(args, kwargs)} ({e})"
    return None


def _shape(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return "(" + ", ".join([*map(str, args), *(f"{k}=..." for k in kwargs)]) + ")"


def _missing(obj: Any, names: tuple[str, ...]) -> list[str]:
    return [n for n in names if not callable(getattr(obj, n, None))]


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    )


def check_provider(obj: Any) -> str | None:
    """A class (or factory) building providers: `from_options(options, store=...)` or
    `obj(model=...)`; a class must have async extend(requests), describe() and aclose()."""
    if not callable(obj):
        return "it is not callable (a provider class or factory)"
    if inspect.isclass(obj):
        missing = _missing(obj, ("extend", "describe", "aclose"))
        if missing:
            return f"it has no {', '.join(f'{m}()' for m in missing)}"
        if not _is_async(obj.extend):
            return "its extend(requests) is not an async method"
    if callable(getattr(obj, "from_options", None)):
        return _binds(obj.from_options, "options", store=None)
    return _binds(obj, model="m")


def check_grader_type(obj: Any) -> str | None:
    """A grader type: factory(spec: dict, ctx: GraderContext) -> Grader."""
    if not callable(obj):
        return "it is not callable (factory(spec, ctx) -> Grader)"
    return _binds(obj, "spec", "ctx")


def check_search(obj: Any) -> str | None:
    """A search: async fn(examples, provider, scorer, params, grader=None, on_result=None)."""
    if not callable(obj) or not _is_async(obj):
        return "it is not an async function (examples, provider, scorer, params, ...)"
    return _binds(obj, "examples", "provider", "scorer", "params", grader=None, on_result=None)


def check_executor(obj: Any) -> str | None:
    """An executor class: create(cfg, store, provider=None, cancel_check=None) -> an object with
    driver_provider(), and async search, grade, train and aclose."""
    if not callable(getattr(obj, "create", None)):
        return "it has no create(cfg, store, provider=None, cancel_check=None)"
    missing = _missing(obj, ("driver_provider", "search", "grade", "train", "aclose"))
    if missing:
        return f"it has no {', '.join(f'{m}()' for m in missing)}"
    return _binds(obj.create, "cfg", "store", provider=None, cancel_check=None)


def check_job_kind(obj: Any) -> str | None:
    """A job kind: a `name` string, run(ctx) and prepare(args, job_id) (see jobs/kinds.py)."""
    if not isinstance(getattr(obj, "name", None), str):
        return "it has no `name` string"
    missing = _missing(obj, ("run", "prepare"))
    if missing:
        return f"it has no {', '.join(f'{m}()' for m in missing)}"
    return _binds(obj.run, "ctx") or _binds(obj.prepare, {}, None)


# Providers: a class or factory taking keyword options (model=..., ...); see providers/build.py.
PROVIDERS: Registry[Any] = Registry("provider", "iro_blackbox.providers", check_provider)
# Grader types: factory(spec: dict, ctx: GraderContext) -> Grader; see graders/build.py.
GRADERS: Registry[Any] = Registry("grader type", "iro_blackbox.graders", check_grader_type)
# Searches: async fn(examples, provider, scorer, params, grader=None, on_result=None).
SEARCHES: Registry[Any] = Registry("search", "iro_blackbox.searches", check_search)
# Executors: a class with create(cfg, store, provider=None) -> Executor; see executors/base.py.
EXECUTORS: Registry[Any] = Registry("executor", "iro_blackbox.executors", check_executor)
# Job kinds: a JobKind (name, run, prepare, help); see jobs/kinds.py.
JOB_KINDS: Registry[Any] = Registry("job kind", "iro_blackbox.job_kinds", check_job_kind)

ALL: tuple[Registry[Any], ...] = (PROVIDERS, GRADERS, SEARCHES, EXECUTORS, JOB_KINDS)
