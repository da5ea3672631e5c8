"""Start order: a dependency graph from ``io.corral.after`` / ``io.corral.before`` (and the implicit
dependencies of ``volumes_from: [UNIT]`` and ``service:UNIT`` modes).

Dependencies are ordering, not requirements (like systemd's After=): a unit waits until each of its
dependencies has *settled*:

- a oneshot dependency has exited (with any code: a failed oneshot still lets its dependents start,
  as in RancherOS) or could not be started;
- a createonly dependency has been created;
- any other dependency has been started (or its start was attempted and failed; it is retried under
  its restart policy while its dependents go ahead).

Independent units start in parallel: ``ready`` gives every unit whose dependencies have settled;
``waves`` gives the same as static layers. Shutdown is the reverse."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

from supervisor.config.errors import ConfigError
from supervisor.config.keypath import KeyPath, format_path, parse_path
from units.model import LABEL_AFTER, LABEL_BEFORE, RANCHER_ALIASES, Unit


class GraphError(ValueError):
    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


def _unit_path(unit: Unit) -> KeyPath:
    if unit.key:
        try:
            return parse_path(unit.key)
        except ValueError:
            pass
    return (unit.name,)


def _label_error(unit: Unit, meaning: str, message: str) -> ConfigError:
    labels = unit.label_map
    label = next((k for k, v in RANCHER_ALIASES.items() if v == meaning and k in labels), meaning)
    if meaning in labels:
        label = meaning
    return ConfigError(unit.source or "units", format_path((*_unit_path(unit), "labels", label)), message)


def _requires_error(unit: Unit, dep: str, message: str) -> ConfigError:
    path = _unit_path(unit)
    if any(v.unit == dep for v in unit.volumes_from):
        key: KeyPath = (*path, "volumes_from")
    else:
        modes = ("network_mode", "pid", "ipc")
        field = next((f for f in modes if getattr(unit, f) == f"container:{dep}"), "network_mode")
        key = (*path, field)
    return ConfigError(unit.source or "units", format_path(key), message)


@dataclass(frozen=True)
class UnitGraph:
    units: Mapping[str, Unit]
    deps: Mapping[str, frozenset[str]]  # unit -> the units it waits for

    @classmethod
    def build(cls, units: Mapping[str, Unit]) -> tuple[UnitGraph | None, list[ConfigError]]:
        """Check every reference and look for cycles: ``(graph, [])`` or ``(None, errors)``."""
        errors: list[ConfigError] = []
        deps: dict[str, set[str]] = {name: set() for name in units}
        for name in sorted(units):
            unit = units[name]
            for dep in sorted(unit.after):
                if dep in units:
                    deps[name].add(dep)
                else:
                    errors.append(_label_error(
                        unit, LABEL_AFTER, f"unit {name!r} is ordered after {dep!r}, which is not a unit"
                    ))
            for later in sorted(unit.before):
                if later in units:
                    deps[later].add(name)
                else:
                    errors.append(_label_error(
                        unit, LABEL_BEFORE, f"unit {name!r} is ordered before {later!r}, which is not a unit"
                    ))
            for dep in sorted(unit.requires):
                other = units.get(dep)
                if other is None:
                    errors.append(
                        _requires_error(unit, dep, f"unit {name!r} refers to {dep!r}, which is not a unit")
                    )
                elif other.scope != unit.scope:
                    errors.append(_requires_error(
                        unit, dep,
                        f"unit {name!r} ({unit.scope}) refers to {dep!r}, which runs in the other dockerd"
                        f" ({other.scope})",
                    ))
                else:
                    deps[name].add(dep)
        frozen = {name: frozenset(d) for name, d in deps.items()}
        for cycle in _cycles(frozen):
            first = units[cycle[0]]
            ring = " -> ".join([*cycle, cycle[0]])
            errors.append(ConfigError(
                first.source or "units",
                format_path((*_unit_path(first), "labels")),
                f"ordering cycle between units {', '.join(sorted(cycle))}: {ring} (each waits for the next)",
            ))
        if errors:
            return None, errors
        return cls(dict(units), frozen), []

    @classmethod
    def of(cls, units: Mapping[str, Unit]) -> UnitGraph:
        """Like ``build``, but raises GraphError."""
        graph, errors = cls.build(units)
        if graph is None:
            raise GraphError(errors)
        return graph

    def dependents(self, name: str) -> frozenset[str]:
        return frozenset(n for n, d in self.deps.items() if name in d)

    def waves(self) -> list[list[str]]:
        """Start layers: every unit of a wave can start once the waves before it have settled."""
        level: dict[str, int] = {}

        def depth(name: str) -> int:
            if name not in level:
                level[name] = 1 + max((depth(d) for d in self.deps[name]), default=-1)
            return level[name]

        for name in self.deps:
            depth(name)
        waves: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
        for name in sorted(level):
            waves[level[name]].append(name)
        return waves

    def stop_waves(self) -> list[list[str]]:
        """Shutdown layers: the reverse of ``waves`` (dependents stop before what they depend on)."""
        return list(reversed(self.waves()))

    def settled(self, name: str, started: Set[str], finished_oneshots: Set[str]) -> bool:
        unit = self.units[name]
        if unit.oneshot:
            return name in finished_oneshots
        return name in started or name in finished_oneshots

    def blocking(self, name: str, started: Set[str], finished_oneshots: Set[str]) -> list[str]:
        """The dependencies of ``name`` that have not settled yet (empty: it may start)."""
        return sorted(d for d in self.deps[name] if not self.settled(d, started, finished_oneshots))

    def ready(self, started: Set[str], finished_oneshots: Set[str]) -> set[str]:
        """Units not started yet whose dependencies have all settled. ``started``: units started (or
        created, for createonly units; or whose start was attempted); ``finished_oneshots``: oneshots
        that exited, with any code, or could not be started."""
        return {
            name
            for name in self.deps
            if name not in started and name not in finished_oneshots
            and not self.blocking(name, started, finished_oneshots)
        }

    def stop_ready(self, running: Iterable[str]) -> set[str]:
        """Of the ``running`` units, those that may be stopped now: no unit still running depends on them."""
        up = set(running)
        return {name for name in up if not (self.dependents(name) & up)}


def _cycles(deps: Mapping[str, frozenset[str]]) -> list[list[str]]:
    """Each cycle as a list of units in order (one per strongly connected component; Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(deps[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: set[str] = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1 or v in deps[v]:
                components.append(component)

    for v in sorted(deps):
        if v not in index:
            visit(v)
    cycles = []
    for component in sorted(components, key=min):
        start = min(component)
        path = _path_back(start, component, deps)
        cycles.append(path)
    return cycles


def _path_back(start: str, component: set[str], deps: Mapping[str, frozenset[str]]) -> list[str]:
    """A cycle through ``start`` inside ``component`` (breadth-first, so the shortest)."""
    parents: dict[str, str] = {}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(deps[v] & component):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return list(reversed(path))
            if w not in parents:
                parents[w] = v
                queue.append(w)
    return sorted(component)
