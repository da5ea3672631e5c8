"""The config store: loads every layer, keeps the last good config, and edits the persisted files.

Layers, later wins (maps merge; lists and scalars replace):
  shipped defaults -> the image's defaults (/usr/share/corral/cloud-config.d/*.yml, by name)
  -> cloud-config.d/*.yml (by name) -> cloud-config.yml -> private.yml
  -> kernel command line -> datasources (user-data, then meta-data; in the order listed).
At boot and on reload (``load``) a config with errors keeps what is valid: each error costs its domain
root (``corral.network``, ``hostname``, the netplan ``network``...), which stays on the last good config
(or the defaults), and the rest is put in force (supervisor/config/salvage.py). An interactive change
(``set``, ``unset``, ``merge``) with any error is rejected whole.

Where each layer comes from, and how it is read, is supervisor/config/sources.py.

One verdict: boot and ``reload`` (``load``), ``set``/``unset``/``merge`` (``_rewrite``, which loads the
candidate files) and ``verdict`` (one document on its own over the defaults: ``config validate``, also
offline) all check each layer with ``check_text``/``check_document`` and the whole with ``_judge``.

``set``/``unset``/``merge`` write the user's config (cloud-config.yml, private.yml). A value there is
overridden by the kernel command line and by datasources; a change that such a layer would undo is
refused (nothing written), naming the layer and the key, instead of being persisted to no effect. Both
files are committed together as one generation (supervisor/config/generations.py), all root-only;
``load`` and every edit first adopt hand edits and the old layout and remove crash leftovers.

Everything here is synchronous: the supervisor runs it on its one config worker thread
(supervisor/config/worker.py), never on its loop; a lock serialises ``reload``/``set``/``merge`` anyway
so that no two callers interleave."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from supervisor.config.cmdline import SOURCE as CMDLINE
from supervisor.config.datasources import DatasourceRegistry, MediaReader, default_registry
from supervisor.config.errors import DOCUMENT, ConfigError
from supervisor.config.generations import CLOUD_CONFIG, PRIVATE, Generations, Recovered
from supervisor.config.judge import DomainCheck, Ignored, Judge, attribute
from supervisor.config.keypath import KeyPath, format_path, get_path, nested, parse_path, without
from supervisor.config.layers import (
    ALIAS,
    CORRAL,
    Layer,
    check_document,
    check_text,
    ignored,
    layer_warnings,
)
from supervisor.config.merge import changed_keys, diff, merge, merge_layers, same
from supervisor.config.salvage import ON_DEFAULTS, ON_LAST_GOOD, WHOLE, Salvaged, describe_verdict, on_now
from supervisor.config.schema import Schema
from supervisor.config.secrets import REDACTED, keep_stored, redact, split_secrets
from supervisor.config.sources import LayerSources
from supervisor.config.validate import Validator
from supervisor.config.yamlload import MAX_DEPTH, Document, parse_yaml, read_config_file
from supervisor.events import ConfigChanged
from supervisor.paths import Paths

HEADER = "#cloud-config\n"
SET_SOURCE = "<set>"
UNSET_SOURCE = "<unset>"
MERGE_SOURCE = "<merge>"
MAX_KEY_PATH = 1000
"""Upper bound on the characters of a key path given to get/set/unset."""


@dataclass(frozen=True)
class LoadResult:
    """A freshly merged config, its problems, and which source gave each leaf (formatted key path ->
    file or pseudo-source such as ``cmdline``). With errors, ``config`` merges only the valid layers
    and is not put in force. ``changed`` is filled in by ``load`` when the config came into force."""

    config: dict[str, Any]
    errors: list[ConfigError]
    warnings: list[ConfigError] = field(default_factory=list)
    provenance: dict[str, str] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    overriding: dict[str, str] = field(default_factory=dict)
    """The sources above the user's config (cmdline, datasource files) -> what that layer is."""
    parsed: dict[str, object] = field(default_factory=dict)
    """Each domain's typed config, as its check parsed it (domain name -> object)."""
    salvage: Salvaged | None = None
    """``verdict``, ``load``: what a boot keeps of a config with errors (None: it has none)."""
    notes: list[str] = field(default_factory=list)
    """What each datasource found, one line each (for the journal)."""

    @property
    def ok(self) -> bool:
        return not self.errors


class ReloadResult(NamedTuple):
    """Outcome of ``reload``; unpacks as ``errors, changed``."""

    errors: list[ConfigError]  # non-empty: the roots they cost stayed on the last good config
    changed: list[str]  # top-level key paths (``corral.*`` one level down) that changed

    @property
    def ok(self) -> bool:
        return not self.errors

    def event(self, generation: int) -> ConfigChanged | None:
        """The bus event to publish when a new config came into force, else None."""
        if not self.changed:
            return None
        return ConfigChanged(generation=generation, changed=tuple(self.changed))


class ConfigStore:
    """The host's config. ``current`` is always a valid config (the shipped defaults at first)."""

    def __init__(
        self,
        paths: Paths,
        cmdline_text: str | None = None,
        *,
        registry: DatasourceRegistry | None = None,
        checks: Mapping[str, DomainCheck] | None = None,
        media: MediaReader | None = None,
        ignored: Ignored | None = None,
        check_schema: bool = True,
    ) -> None:
        self.paths = paths
        self._checks = dict(checks or {})
        self._cmdline_text = cmdline_text
        self._schema = Schema()
        self._validator = Validator(self._schema, check_schema=check_schema)
        self.sources = LayerSources(paths, self._validator, self._schema, cmdline_text,
                                    registry if registry is not None else default_registry(), media)
        self._judge_whole = Judge(self._validator, self.sources, self._checks, ignored or {})
        self._lock = threading.RLock()
        self._default_layers = self.sources.defaults()
        self._defaults, self._provenance = merge_layers(
            (lay.source, lay.data) for lay in self._default_layers
        )
        self._default_provenance = dict(self._provenance)
        self._current: dict[str, Any] = self._defaults
        self._parsed: dict[str, object] = {}  # each domain's typed config of the config in force
        self.generation = 0
        self.last_errors: list[ConfigError] = []  # the last load's errors; [] when it had none
        self.last_warnings: list[ConfigError] = []
        self.last_edit_warnings: list[ConfigError] = []  # the last set/merge's own (a RancherOS boolean)
        self.last_notes: list[str] = []  # what each datasource found at the last load
        self.salvaged: dict[str, str] = {}
        """The domain roots the last load's errors cost -> what each is on (``salvage.ON_DEFAULTS``,
        ``ON_LAST_GOOD``); ``salvage.WHOLE`` when nothing could be salvaged."""
        self.salvaged_errors: dict[str, int] = {}  # the same roots -> how many errors each had
        self.last_recovered = Recovered()  # what the last load adopted or cleaned (generations.py)

    # -- locations ---------------------------------------------------------------------------------------

    @property
    def cloud_config_path(self) -> Path:
        return self.sources.cloud_config_path

    @property
    def private_path(self) -> Path:
        return self.sources.private_path

    @property
    def dropin_dir(self) -> Path:
        return self.sources.dropin_dir

    # -- reading -----------------------------------------------------------------------------------------

    @property
    def current(self) -> dict[str, Any]:
        """A copy of the config in force."""
        with self._lock:
            return copy.deepcopy(self._current)

    def parsed(self, domain: str) -> object:
        """The typed config of ``domain`` in the config in force, as its check parsed it when that config
        was accepted (parsed once per generation; before the first load, the defaults', parsed now)."""
        with self._lock:
            if domain not in self._parsed:
                provenance = self._provenance
                visible = self._judge_whole.visible(self._current)
                checked = self._checks[domain](visible, lambda key: attribute(key, provenance))
                self._parsed[domain] = checked.parsed
            return self._parsed[domain]

    @property
    def defaults(self) -> dict[str, Any]:
        return copy.deepcopy(self._defaults)

    @property
    def provenance(self) -> dict[str, str]:
        """For the config in force: formatted key path of each leaf -> the source that gave it."""
        with self._lock:
            return dict(self._provenance)

    def get(self, key_path: str, include_secrets: bool = False) -> Any:
        """The value in force at ``key_path`` (``corral.log.level``), secrets replaced by
        ``"<redacted>"`` unless asked for (as ``export``); KeyError when absent (``missing`` says
        why), ValueError when the path is malformed."""
        path = parse_key(self._schema, key_path)
        with self._lock:
            value = copy.deepcopy(get_path(self._current, path))
        return value if include_secrets else redact(value, path)

    def missing(self, key_path: str) -> str | None:
        """Why ``get`` finds nothing at ``key_path``: None when the schema knows the key (it just has
        no value in the config in force), else the schema's "unknown key" message (with a "did you
        mean"). ValueError when the path is malformed."""
        path = parse_key(self._schema, key_path)
        names: list[str] = []
        for seg in path:  # up to the first list index: the schema's own "unknown key" on a probe
            if not isinstance(seg, str):
                break
            names.append(seg)
        prefixes = {format_path(names[:n]) for n in range(1, len(names) + 1)}
        for error in self._validator.validate(Document("<get>", nested(names, None))):
            if error.key in prefixes and error.message.startswith("unknown key"):
                return f"{error.key}: {error.message}"
        return None

    def export(self, include_secrets: bool = False, *, user_only: bool = False) -> dict[str, Any]:
        """The config in force (merged), secrets replaced by ``"<redacted>"`` unless asked for.
        ``user_only``: instead, what ``set``/``merge`` persisted (cloud-config.yml + private.yml, the
        difference from the defaults), as read now. ``merge`` refuses ``"<redacted>"`` values, so only
        an export with secrets can be merged back whole."""
        if user_only:
            _, user, _ = self._persisted_layers()
            config, _ = merge_layers((lay.source, lay.data) for lay in user)
        else:
            config = self.current
        return config if include_secrets else redact(config)

    def schema(self) -> dict[str, Any]:
        """The JSON Schema (draft 2020-12) every document is validated against."""
        return self._schema.copy()

    def verdict(self, text: str, filename: str = "<text>") -> LoadResult:
        """The verdict on one cloud-config document as the user's whole config: the document checked
        on its own, then over the defaults (schema and every domain check), exactly as boot, reload
        and merge check it. Nothing else is read: no cmdline, no drop-ins, no datasource is fetched
        (their kinds are checked). Changes nothing. With errors, ``salvage`` is what a boot would keep
        of it (each failing root on the defaults) and the warnings are those of what it would apply."""
        layer, errors = check_text(text, filename, self._validator)
        layers = [*self._default_layers, *([layer] if layer is not None else [])]
        result = self._judge(layers, errors, [])
        if result.ok:
            return result
        kept, errors = check_text(text, filename, self._validator, partial=True)
        layers = [*self._default_layers, *([kept] if kept is not None else [])]
        salvaged = self._judge_whole.salvage(layers, errors, self._defaults, self._default_provenance)
        warnings = list(dict.fromkeys([*result.warnings, *salvaged.judged.warnings]))  # each once
        return replace(result, warnings=warnings, salvage=salvaged)

    # -- loading -----------------------------------------------------------------------------------------

    def read(self) -> LoadResult:
        """Read and merge every layer now, changing nothing."""
        return self._load({})

    def load(self) -> LoadResult:
        """Read and merge every layer and put the result in force (``generation`` goes up when it
        differs). With errors, what is valid is put in force: each error's domain root stays on the
        config in force (the last good one) or the defaults (``salvaged`` says which), a file with an
        error no root holds is not read, and when even that does not give a config that passes every
        check the config in force stays whole."""
        with self._lock:
            self.last_recovered, tidy = _recover(self.sources.generations)
            read = self.sources.read(self._default_layers, {}, partial=True)
            salvaged = self._judge_whole.salvage(read.layers, read.errors, self._current, self._provenance)
            warnings = [*read.warnings, *layer_warnings(read.layers), *salvaged.judged.warnings, *tidy]
            self.last_warnings = warnings
            self.last_notes = read.notes
            self.last_errors = salvaged.errors
            self.salvaged_errors = {root: len(errs) for root, errs in salvaged.roots.items()}
            if salvaged.config is None:
                on = ON_DEFAULTS if self.generation == 0 else ON_LAST_GOOD
                self.salvaged = {WHOLE: on}
                self.salvaged_errors = {WHOLE: len(salvaged.errors)}
                config, provenance = merge_layers((lay.source, lay.data) for lay in read.layers)
                return LoadResult(config, salvaged.errors, warnings, provenance, overriding=read.overriding,
                                  salvage=salvaged, notes=read.notes)
            self.salvaged = {root: on_now(root, self.generation, self.salvaged) for root in salvaged.roots}
            config = salvaged.config
            changed = changed_keys(self._current, config)
            if not changed and self._parsed:  # the same config, but its unit files changed
                changed = salvaged.judged.files_changed(self._parsed)
            if changed:
                self._current = config
                self._parsed = dict(salvaged.judged.parsed)
                self.generation += 1
            self._provenance = salvaged.provenance
            return LoadResult(config, salvaged.errors, warnings, salvaged.provenance, changed,
                              read.overriding, dict(salvaged.judged.parsed),
                              salvaged if salvaged.errors else None, notes=read.notes)

    def reload(self) -> ReloadResult:
        """``load``, reported as ``(errors, changed)``: errors name what stayed on the last good config
        (``salvaged``); ``changed`` is what came into force all the same."""
        result = self.load()
        return ReloadResult(result.errors, result.changed)

    def _load(self, overrides: Mapping[Path, str | None]) -> LoadResult:
        read = self.sources.read(self._default_layers, overrides)
        result = self._judge(read.layers, read.errors, read.warnings)
        return replace(result, overriding=read.overriding, notes=read.notes)

    def _judge(
        self, layers: Sequence[Layer], errors: list[ConfigError], warnings: list[ConfigError]
    ) -> LoadResult:
        """Merge ``layers`` (each already checked on its own: ``errors``, ``warnings``) and, when
        they are all valid, check the whole: the schema (cross-layer problems), then each domain
        check. Every path to a config in force, and ``verdict``, ends here."""
        config, provenance = merge_layers((lay.source, lay.data) for lay in layers)
        warnings = [*warnings, *layer_warnings(layers)]
        if errors:
            return LoadResult(config, errors, warnings, provenance)
        judged = self._judge_whole.whole(config, provenance)
        return LoadResult(config, [*errors, *judged.errors], [*warnings, *judged.warnings], provenance,
                          parsed=dict(judged.parsed) if not judged.errors else {})

    # -- editing -----------------------------------------------------------------------------------------

    def set(self, key_path: str, value_yaml_text: str) -> list[ConfigError]:
        """Set one key (value given as YAML) and persist it; ``reload`` puts it in force. Where the
        schema wants a string, the text is taken as is (``set hostname on`` sets "on"). A map given as
        the value merges into the map there. Returns errors; [] when persisted."""
        try:
            path = parse_key(self._schema, key_path)
            if not all(isinstance(seg, str) for seg in path):
                raise ValueError("a list element cannot be set on its own: set the whole list")
        except ValueError as exc:
            return [ConfigError(SET_SOURCE, key_path, str(exc))]
        # a duplicate key under a key corral ignores: the last one counts, as in a file (layers.ignored)
        value, nodes, errors = parse_yaml(value_yaml_text, SET_SOURCE,
                                          lambda inner: ignored(self._schema, (*path, *inner)))
        if errors:
            return [ConfigError(SET_SOURCE, format_path(path), e.message, e.line) for e in errors]
        if self._schema.expects_string(self._schema.at(path)) and not isinstance(value, str | list | dict):
            value = value_yaml_text.strip()
            nodes = {}
        doc = Document(SET_SOURCE, nested(path, value), {(*path, *p): info for p, info in nodes.items()})
        layer, errors = check_document(doc, self._validator)
        self.last_edit_warnings = list(layer.warnings) if layer is not None else []
        if layer is None:
            return errors
        return self._persist(layer.data, SET_SOURCE)

    def merge(self, yaml_text: str, filename: str | None = None) -> list[ConfigError]:
        """Merge a cloud-config document into the persisted config (validated first); ``reload`` puts
        it in force. Errors name ``filename`` (the input as the user gave it; ``<merge>`` without one),
        also those found only in the merged whole. Returns errors; [] when persisted."""
        source = filename or MERGE_SOURCE
        layer, errors = check_text(yaml_text, source, self._validator)
        self.last_edit_warnings = list(layer.warnings) if layer is not None else []
        if layer is None:
            return errors
        return self._persist(layer.data, source)

    def unset(self, key_path: str) -> list[ConfigError]:
        """Remove one key from the persisted user config (cloud-config.yml, private.yml), so that what
        the layers under it say (defaults, cloud-config.d) counts again; ``reload`` puts it in force.
        A key the user's config does not hold is an error naming where its value comes from."""
        try:
            path = parse_key(self._schema, key_path)
            if not path or not all(isinstance(seg, str) for seg in path):
                raise ValueError("a list element cannot be removed on its own: set the whole list")
        except ValueError as exc:
            return [ConfigError(UNSET_SOURCE, key_path, str(exc))]

        def remove(persisted: dict[str, Any]) -> dict[str, Any]:
            return dict(without(persisted, path))

        try:
            return self._rewrite(remove, [path], UNSET_SOURCE)
        except KeyError:
            key = format_path(path)
            source = attribute(key, self.provenance) if self._has(path) else None
            where = f"its value comes from {source}" if source else "it is not in the config at all"
            return [ConfigError(UNSET_SOURCE, key, f"not set in the user's config ({where})")]

    def _has(self, path: KeyPath) -> bool:
        with self._lock:
            try:
                get_path(self._current, path)
            except KeyError:
                return False
            return True

    def _persisted_layers(self) -> tuple[list[Layer], list[Layer], list[ConfigError]]:
        """``(below, user, errors)``: the layers under cloud-config.yml (defaults, cloud-config.d) and
        the persisted user layers (cloud-config.yml, private.yml), as the files are now."""
        below: list[Layer] = list(self._default_layers)
        user: list[Layer] = []
        errors: list[ConfigError] = []
        for path, layer, errs in self.sources.files():
            errors.extend(errs)
            if layer is not None:
                (below if path.parent == self.dropin_dir else user).append(layer)
        return below, user, errors

    def _persist(self, overlay: dict[str, Any], source: str) -> list[ConfigError]:
        """Write cloud-config.yml (and private.yml) so that they hold the old persisted config plus
        ``overlay``, minus whatever the defaults and cloud-config.d already say. A ``"<redacted>"``
        placeholder (a redacted export merged back) keeps the secret stored there; one with no stored
        secret is refused, naming the key."""

        def change(persisted: dict[str, Any]) -> dict[str, Any]:
            kept, missing = keep_stored(overlay, persisted)
            if missing:
                raise _Refused([
                    ConfigError(source, format_path(p), f"{REDACTED!r} is the placeholder of an export "
                                "without secrets, and no secret is stored here to keep: give the secret "
                                "or leave the key out")
                    for p in missing
                ])
            merged: dict[str, Any] = merge(persisted, kept)
            return merged

        try:
            return self._rewrite(change, _leaves(overlay), source)
        except _Refused as refused:
            return refused.errors

    def _rewrite(
        self, change: Callable[[dict[str, Any]], dict[str, Any]], touched: Sequence[KeyPath], source: str
    ) -> list[ConfigError]:
        """Write cloud-config.yml (and private.yml) so that they hold ``change`` of the old persisted
        config, minus whatever the defaults and cloud-config.d already say; nothing is written when the
        result does not load, or when a layer above the user's config (cmdline, a datasource) would
        undo the change at one of the ``touched`` key paths. KeyError from ``change`` passes through."""
        with self._lock:
            self.last_recovered, errors = _recover(self.sources.generations)  # a hand edit is the base
            if errors:
                return errors
            below, user, errors = self._persisted_layers()
            if errors:
                return errors
            base, _ = merge_layers((lay.source, lay.data) for lay in below)
            persisted, _ = merge_layers((lay.source, lay.data) for lay in user)
            changed = change(persisted)
            wanted = merge(base, changed)
            public, private = split_secrets(diff(wanted, base))
            cc_text = _dump(public)
            private_text = _dump(private) if private else None
            result = self._load({self.cloud_config_path: cc_text, self.private_path: private_text})
            if result.errors:  # the files to be written are the input's result: name the input
                written = (str(self.cloud_config_path), str(self.private_path), "merged")
                return [replace(e, file=source) if e.file in written else e for e in result.errors]
            errors = _overridden(wanted, result, touched, source)
            if errors:
                return errors
            # both files as one new generation, switched in with one rename (generations.py)
            private_bytes = None if private_text is None else private_text.encode()
            try:
                self.sources.generations.commit({CLOUD_CONFIG: cc_text.encode(), PRIVATE: private_bytes})
            except OSError as exc:  # a full or read-only disk: the generation in force stays whole
                return [ConfigError(str(self.cloud_config_path), DOCUMENT,
                                    f"cannot write: {exc.strerror or exc}; nothing changed")]
            return []

def _recover(generations: Generations) -> tuple[Recovered, list[ConfigError]]:
    """Adopt hand edits and the old layout, remove crash leftovers (generations.py). A failure (a
    read-only or full disk) does not stop a load: the files are read where they are, and the failure is
    a problem naming the config directory (a load's warning, an edit's error)."""
    try:
        return generations.recover(), []
    except OSError as exc:
        why = f"cannot adopt or tidy the user's config files: {exc.strerror or exc}"
        return Recovered(), [ConfigError(str(generations.dir), DOCUMENT, why)]


class _Refused(Exception):
    """A change refused before anything is written (its errors), raised out of a ``_rewrite`` change."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("; ".join(map(str, errors)))
        self.errors = errors


def validate_file(store: ConfigStore, path: str | Path) -> list[ConfigError]:
    """The errors of ``store.verdict`` on the file at ``path`` (or why it cannot be read)."""
    try:
        text, errors = read_config_file(Path(path))
    except FileNotFoundError as exc:
        return [ConfigError(str(path), DOCUMENT, f"cannot read: {exc.strerror}")]
    if text is None:
        return errors
    return store.verdict(text, str(path)).errors


def parse_key(schema: Schema, key_path: str) -> KeyPath:
    """A dotted key path as given (``rancher.x`` is ``corral.x``), with the schema's free-form maps'
    keys joined back (``corral.sysctl.net.ipv4.ip_forward``)."""
    if len(key_path) > MAX_KEY_PATH:
        raise ValueError(f"a key path is at most {MAX_KEY_PATH} characters (the limit)")
    path = parse_path(key_path)
    if len(path) > MAX_DEPTH:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
    if path[:1] == (ALIAS,):
        path = (CORRAL, *path[1:])
    return schema.join_free_keys(path)


def verdict_reply(result: LoadResult) -> dict[str, Any]:
    """``verdict`` as data, as `config validate` prints it and the control socket sends it; with
    errors, ``boot`` says what a boot would keep and drop (supervisor/config/salvage.py)."""
    reply: dict[str, Any] = {
        "valid": result.ok,
        "errors": [e.to_dict() for e in result.errors],
        "warnings": [w.to_dict() for w in result.warnings],
    }
    if result.salvage is not None:
        reply["boot"] = {**result.salvage.kept_dropped(), "summary": describe_verdict(result.salvage)}
    return reply


def _leaves(data: Mapping[str, Any], path: KeyPath = ()) -> list[KeyPath]:
    """The key paths of a document's leaves: scalars, lists and empty maps."""
    found: list[KeyPath] = []
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            found.extend(_leaves(value, (*path, key)))
        else:
            found.append((*path, key))
    return found


def _overridden(
    wanted: Mapping[str, Any], result: LoadResult, touched: Sequence[KeyPath], source: str
) -> list[ConfigError]:
    """A change is undone where the config that would come into force (``result``) differs from what
    the layers up to the user's config say (``wanted``) at a touched key path: a layer above (the
    kernel command line, a datasource) gives that key. One error per such key, naming the layer."""
    errors: list[ConfigError] = []
    for path in touched:
        if same(_value_at(wanted, path), _value_at(result.config, path)):
            continue
        key = format_path(path)
        # the leaves of the overriding layer at, under or above the key
        givers = [
            (leaf, giver)
            for leaf, giver in result.provenance.items()
            if giver in result.overriding and (_within(leaf, key) or _within(key, leaf))
        ]
        if not givers:  # cannot happen while only those layers come after the user's; say so anyway
            givers = [(key, attribute(key, result.provenance))]
        leaf, giver = givers[0]
        layer = result.overriding.get(giver, "a layer above the user's config")
        where = f"{layer} ({giver})" if giver == CMDLINE else f"{giver} ({layer})"
        fix = "change it in the boot loader's kernel parameters" if giver == CMDLINE else "change it there"
        errors.append(
            ConfigError(
                source,
                key,
                f"not changed: {leaf} is set by {where}, which wins over the user's config; {fix}",
            )
        )
    return errors


def _within(key: str, outer: str) -> bool:
    """``key`` is ``outer`` or a key under it (formatted key paths)."""
    return key == outer or key.startswith((outer + ".", outer + "["))


_ABSENT = object()


def _value_at(config: Mapping[str, Any], path: KeyPath) -> Any:
    try:
        return get_path(config, path)
    except KeyError:
        return _ABSENT


def _dump(data: dict[str, Any]) -> str:
    if not data:
        return HEADER
    return HEADER + yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
