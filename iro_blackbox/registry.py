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

An entry point is loaded the first time its name is asked for. A name registered at run time wins
over an entry point of the same name.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named plug-ins of one kind: registered objects and (lazily loaded) entry points."""

    def __init__(self, what: str, group: str, check: Callable[[Any], bool] | None = None):
        self.what = what  # "provider", "grader type", ... (for messages)
        self.group = group  # the entry-point group
        self._check = check  # what a loaded object must satisfy (e.g. callable)
        self._items: dict[str, T] = {}
        self._entry_points: dict[str, EntryPoint] | None = None

    def _eps(self) -> dict[str, EntryPoint]:
        if self._entry_points is None:
            self._entry_points = {ep.name: ep for ep in entry_points(group=self.group)}
        return self._entry_points

    def register(self, name: str, obj: T) -> None:
        """Register `obj` under `name` (replacing what was there, entry point or not)."""
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"a {self.what} needs a non-empty name, got {name!r}")
        self._accept(name, obj, "registered")
        self._items[name] = obj

    def unregister(self, name: str) -> None:
        """Forget a name registered at run time (entry points stay)."""
        self._items.pop(name, None)

    def refresh(self) -> None:
        """Read the entry points again (after installing a plug-in into a running process)."""
        self._entry_points = None

    def names(self) -> list[str]:
        return sorted(set(self._items) | set(self._eps()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._items or name in self._eps())

    def get(self, name: str) -> T:
        """The object registered as `name`; ConfigError naming the choices when there is none."""
        if isinstance(name, str) and name in self._items:
            return self._items[name]
        ep = self._eps().get(name) if isinstance(name, str) else None
        if ep is None:
            raise ConfigError(
                f"unknown {self.what} {name!r}: choose one of {', '.join(self.names()) or 'none'}"
            )
        try:
            obj = ep.load()
        except Exception as e:  # a broken plug-in: say which, never a traceback
            raise ConfigError(
                f"cannot load {self.what} '{name}' from {ep.value} ({type(e).__name__}: {e})"
            ) from None
        self._accept(name, obj, f"entry point {ep.value}")
        self._items[name] = obj
        return obj

    def _accept(self, name: str, obj: Any, source: str) -> None:
        if self._check is not None and not self._check(obj):
            raise ConfigError(f"{self.what} '{name}' ({source}) is not usable: got {obj!r}")


def _is_job_kind(obj: Any) -> bool:
    return callable(getattr(obj, "run", None)) and isinstance(getattr(obj, "name", None), str)


# Providers: a class or factory taking keyword options (model=..., ...); see providers/build.py.
PROVIDERS: Registry[Any] = Registry("provider", "iro_blackbox.providers", callable)
# Grader types: factory(spec: dict, ctx: GraderContext) -> Grader; see graders/build.py.
GRADERS: Registry[Any] = Registry("grader type", "iro_blackbox.graders", callable)
# Searches: async fn(examples, provider, scorer, params, grader=None, on_result=None).
SEARCHES: Registry[Any] = Registry("search", "iro_blackbox.searches", callable)
# Executors: a class with create(cfg, store, provider=None) -> Executor; see executors/base.py.
EXECUTORS: Registry[Any] = Registry(
    "executor", "iro_blackbox.executors", lambda o: callable(getattr(o, "create", None))
)
# Job kinds: a JobKind (name, run, prepare, help); see jobs/kinds.py.
JOB_KINDS: Registry[Any] = Registry("job kind", "iro_blackbox.job_kinds", _is_job_kind)
