"""The ``regshift sync`` file: YAML in, checked entries out (no I/O beyond the text given).

Every mistake is a :class:`SyncFileError` naming the file, the line and the key, so a typo
(``destinaton``) is never silently ignored: unknown and repeated keys are refused, as are
values of the wrong type, invalid references, regular expressions and version ranges.

PyYAML is imported only here, and this module only by ``sync``: no other command loads it.
Line numbers come from the composed node tree (each node's start mark), not from the loaded
objects, which have none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from .errors import InvalidReference
from .manifests import Platform
from .reference import Reference, normalise_registry, parse_reference, parse_repository
from .semver import Range, parse_range

if TYPE_CHECKING:
    import yaml

__all__ = ["Entry", "Settings", "SyncFile", "SyncFileError", "TagFilter", "parse_sync_file"]

EntryKind = Literal["repository", "image", "registry"]

_SETTINGS = ("referrers", "platforms", "digestTags")
_TOP = ("defaults", "sync")
_ENTRY = ("source", "destination", "tags", "repositories", *_SETTINGS)
_TAGS = ("include", "exclude", "semver", "newest")
_REPOSITORIES = ("include", "exclude")


class SyncFileError(ValueError):
    """The sync file is malformed; the message is ``FILE:LINE: KEY: problem``."""


@dataclass(frozen=True, slots=True)
class Settings:
    """What to copy for an entry: referrers, a subset of platforms, cosign digest tags."""

    referrers: bool = False
    platforms: tuple[Platform, ...] = ()
    digest_tags: bool = False


@dataclass(frozen=True, slots=True)
class TagFilter:
    """Regular expressions (``re.search``), a version range and a count, all optional."""

    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()
    semver: Range | None = None
    newest: int | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One ``sync`` entry: a repository, one image, or a whole registry."""

    kind: EntryKind
    source: Reference | str  # a registry entry's source is its host
    #: A repository, or a tagged reference (image); for a registry entry the text
    #: ``host[/prefix]`` under which its repositories keep their paths.
    destination: Reference | str
    line: int
    settings: Settings = field(default_factory=Settings)
    tags: TagFilter = field(default_factory=TagFilter)
    repositories: TagFilter = field(default_factory=TagFilter)


@dataclass(frozen=True, slots=True)
class SyncFile:
    path: str
    entries: tuple[Entry, ...]


class _Reader:
    """Walks composed YAML nodes, naming the file, line and key of every complaint."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, node: yaml.Node | None, key: str, problem: str) -> SyncFileError:
        line = node.start_mark.line + 1 if node is not None else 1
        where = f"{key}: " if key else ""
        return SyncFileError(f"{self.path}:{line}: {where}{problem}")

    def mapping(
        self, node: yaml.Node, key: str, allowed: tuple[str, ...]
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        import yaml

        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, key, "expected a mapping of keys to values")
        found: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for k, v in node.value:
            name = k.value if isinstance(k, yaml.ScalarNode) else None
            full = f"{key}.{name}" if key and name else (name or key)
            if name not in allowed:
                known = ", ".join(allowed)
                raise self.fail(k, full, f"unknown key (expected one of: {known})")
            if name in found:
                raise self.fail(k, full, "given twice")
            found[name] = (k, v)
        return found

    def scalar(self, node: yaml.Node, key: str) -> object:
        import yaml

        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, key, "expected a single value")
        return yaml.SafeLoader("").construct_object(node)

    def string(self, node: yaml.Node, key: str) -> str:
        value = self.scalar(node, key)
        if not isinstance(value, str) or not value:
            raise self.fail(node, key, "expected a non-empty string")
        return value

    def boolean(self, node: yaml.Node, key: str) -> bool:
        value = self.scalar(node, key)
        if not isinstance(value, bool):
            raise self.fail(node, key, "expected true or false")
        return value

    def strings(self, node: yaml.Node, key: str) -> list[tuple[yaml.Node, str]]:
        """A list of strings, or one string standing for a list of one."""
        import yaml

        if isinstance(node, yaml.SequenceNode):
            return [(item, self.string(item, key)) for item in node.value]
        return [(node, self.string(node, key))]


def parse_sync_file(text: str, path: str = "<sync file>") -> SyncFile:
    """Parse and check a sync file.

    Raises:
        SyncFileError: malformed YAML, an unknown or repeated key, a value of the wrong type,
            an invalid reference, regular expression or version range.
    """
    import yaml

    reader = _Reader(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = " ".join(str(exc.problem or exc.context or "malformed YAML").split())
        raise SyncFileError(f"{path}:{line}: not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise SyncFileError(f"{path}:1: not valid YAML: {' '.join(str(exc).split())}") from None
    if root is None:
        raise SyncFileError(f"{path}:1: sync: the file is empty (expected a 'sync' list)")
    top = reader.mapping(root, "", _TOP)
    defaults = Settings()
    if "defaults" in top:
        defaults = _settings(reader, top["defaults"][1], "defaults", Settings(), _SETTINGS)
    if "sync" not in top:
        raise reader.fail(root, "sync", "missing (the list of what to mirror)")
    sync_node = top["sync"][1]
    if not isinstance(sync_node, yaml.SequenceNode) or not sync_node.value:
        raise reader.fail(sync_node, "sync", "expected a non-empty list of entries")
    entries = tuple(
        _entry(reader, node, f"sync[{i}]", defaults) for i, node in enumerate(sync_node.value)
    )
    return SyncFile(path=path, entries=entries)


def _settings(
    reader: _Reader, node: yaml.Node, key: str, base: Settings, allowed: tuple[str, ...]
) -> Settings:
    fields = reader.mapping(node, key, allowed)
    referrers, platforms, digest_tags = base.referrers, base.platforms, base.digest_tags
    if "referrers" in fields:
        referrers = reader.boolean(fields["referrers"][1], f"{key}.referrers")
    if "digestTags" in fields:
        digest_tags = reader.boolean(fields["digestTags"][1], f"{key}.digestTags")
    if "platforms" in fields:
        chosen = []
        for item, text in reader.strings(fields["platforms"][1], f"{key}.platforms"):
            try:
                chosen.append(Platform.parse(text))
            except ValueError as exc:
                raise reader.fail(item, f"{key}.platforms", str(exc)) from None
        platforms = tuple(chosen)
    return Settings(referrers=referrers, platforms=platforms, digest_tags=digest_tags)


def _entry(reader: _Reader, node: yaml.Node, key: str, defaults: Settings) -> Entry:
    fields = reader.mapping(node, key, _ENTRY)
    for required in ("source", "destination"):
        if required not in fields:
            raise reader.fail(node, f"{key}.{required}", "missing")
    source_node = fields["source"][1]
    source_text = reader.string(source_node, f"{key}.source")
    kind = _kind(source_text, "repositories" in fields)
    settings = _settings(reader, node, key, defaults, _ENTRY)
    source = _source(reader, source_node, f"{key}.source", source_text, kind)
    dest_node = fields["destination"][1]
    destination = _destination(reader, dest_node, f"{key}.destination", kind)
    tags = TagFilter()
    if "tags" in fields:
        if kind == "image":
            raise reader.fail(fields["tags"][0], f"{key}.tags", _only("tags", "an image"))
        tags = _filter(reader, fields["tags"][1], f"{key}.tags", _TAGS)
    repositories = TagFilter()
    if "repositories" in fields:
        repositories = _filter(
            reader, fields["repositories"][1], f"{key}.repositories", _REPOSITORIES
        )
    line = node.start_mark.line + 1
    return Entry(kind, source, destination, line, settings, tags, repositories)


def _only(key: str, what: str) -> str:
    return f"not for {what} entry ('{key}' filters a repository's or registry's contents)"


def _kind(source: str, has_repositories: bool) -> EntryKind:
    """A registry (a host alone, or ``repositories`` given), one image (a tag or digest) or a
    repository (a path without either)."""
    host_only = "/" not in source and ("." in source or ":" in source or source == "localhost")
    if has_repositories or host_only:
        return "registry"
    try:
        ref = parse_reference(source, default_tag=None)
    except InvalidReference:
        return "repository"  # reported by _source
    return "image" if ref.tag or ref.digest else "repository"


def _source(
    reader: _Reader, node: yaml.Node, key: str, text: str, kind: EntryKind
) -> Reference | str:
    try:
        if kind == "registry":
            if "/" in text:
                raise InvalidReference(f"a registry entry's source is a registry host: {text!r}")
            return normalise_registry(text)
        if kind == "image":
            return parse_reference(text, default_tag=None)
        return parse_repository(text)
    except InvalidReference as exc:
        raise reader.fail(node, key, str(exc)) from None


def _destination(reader: _Reader, node: yaml.Node, key: str, kind: EntryKind) -> Reference | str:
    text = reader.string(node, key)
    try:
        if kind == "image":
            ref = parse_reference(text, default_tag=None)
            if ref.digest:
                raise InvalidReference(f"a destination takes a tag, not a digest: {text!r}")
            return ref
        if kind == "registry" and "/" not in text:  # paths kept at the top of the registry
            return normalise_registry(text)
        ref = parse_repository(text)
        return f"{ref.registry}/{ref.repository}" if kind == "registry" else ref
    except InvalidReference as exc:
        raise reader.fail(node, key, str(exc)) from None


def _filter(reader: _Reader, node: yaml.Node, key: str, allowed: tuple[str, ...]) -> TagFilter:
    fields = reader.mapping(node, key, allowed)
    patterns: dict[str, tuple[re.Pattern[str], ...]] = {}
    for name in ("include", "exclude"):
        compiled = []
        for item, text in (
            reader.strings(fields[name][1], f"{key}.{name}") if name in fields else []
        ):
            try:
                compiled.append(re.compile(text))
            except re.error as exc:
                raise reader.fail(
                    item, f"{key}.{name}", f"bad regular expression {text!r}: {exc}"
                ) from None
        patterns[name] = tuple(compiled)
    semver = None
    if "semver" in fields:
        range_node = fields["semver"][1]
        try:
            semver = parse_range(reader.string(range_node, f"{key}.semver"))
        except ValueError as exc:
            raise reader.fail(range_node, f"{key}.semver", str(exc)) from None
    newest = None
    if "newest" in fields:
        count_node = fields["newest"][1]
        value = reader.scalar(count_node, f"{key}.newest")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise reader.fail(count_node, f"{key}.newest", "expected a whole number >= 1")
        newest = value
    return TagFilter(patterns["include"], patterns["exclude"], semver, newest)
