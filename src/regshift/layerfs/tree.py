"""The file tree a stack of layers produces, built from their tar headers.

Layers are applied in order as an extractor (umoci, containerd) applies them:

- ``DIR/.wh.NAME`` deletes ``DIR/NAME`` (with all it holds); ``DIR/.wh..wh..opq`` hides
  everything lower layers put in ``DIR``. Whiteouts act on lower layers only: what the same
  layer adds stays, whichever comes first in the tar (OCI image-spec, "Whiteouts").
- A directory over a directory updates its metadata and keeps its content; anything else
  replaces what was at its path (a whole directory included).
- A hard link shares the file (the inode) it names: changing or deleting that name later
  leaves the link's content alone, as on a real file system.
- Parent paths are resolved inside the tree, through symlinks and ``..`` (never above the
  root), and missing parent directories are implied.

Only headers are kept in memory; a regular file's content stays in its layer's spill file
(:class:`Inode` records where).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator

from ..errors import LayerError

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_MAX_SYMLINKS = 40  # as Linux (ELOOP)


class Inode:
    """A non-directory: its header (metadata) and, for a regular file, where its bytes are."""

    __slots__ = ("info", "offset", "source")

    def __init__(self, info: tarfile.TarInfo, source: int, offset: int) -> None:
        self.info = info
        self.source = source  # index of the layer whose spill file holds the content
        self.offset = offset  # where in that file the content starts


class Node:
    """One name in the tree: a directory (``children``) or a link to an :class:`Inode`."""

    __slots__ = ("children", "info", "inode", "layer")

    def __init__(
        self,
        layer: int,
        info: tarfile.TarInfo | None = None,
        inode: Inode | None = None,
    ) -> None:
        self.layer = layer  # the layer that last set this name
        self.info = info  # a directory's header; None for an implied directory
        self.inode = inode
        self.children: dict[str, Node] | None = None if inode else {}

    @property
    def is_dir(self) -> bool:
        return self.children is not None


class FileTree:
    """The merged tree; :meth:`apply` one header at a time, layer by layer."""

    def __init__(self) -> None:
        self.root = Node(-1)

    def apply(self, member: tarfile.TarInfo, layer: int, offset: int) -> None:
        """Apply one tar entry of layer number ``layer`` (content at ``offset`` of its spill).

        Raises:
            LayerError: the entry cannot be applied (sparse file, a parent that is a file,
                a hard link to nothing, a symlink loop).
        """
        if member.issparse():
            raise LayerError(f"{member.name}: sparse files are not supported")
        *parents, leaf = _parts(member.name) or [""]
        if leaf == "..":
            raise LayerError(f"{member.name}: an entry named '..'")
        if leaf in ("", "."):
            if member.isdir() and not parents:
                self.root.info = member
            return
        if leaf.startswith(WHITEOUT):
            directory = self._directory(parents, layer, create=False, name=member.name)
            if directory is not None:
                self._whiteout(directory, leaf, layer)
            return
        directory = self._directory(parents, layer, create=True, name=member.name)
        assert directory is not None and directory.children is not None
        existing = directory.children.get(leaf)
        if member.isdir():
            if existing is not None and existing.is_dir:
                existing.info, existing.layer = member, layer
                return
            directory.children[leaf] = Node(layer, info=member)
            return
        inode = self._link(member, layer) if member.islnk() else Inode(member, layer, offset)
        if inode is not None:
            directory.children[leaf] = Node(layer, inode=inode)

    def walk(self) -> Iterator[tuple[str, Node]]:
        """``(path, node)`` of every name, parents first, children sorted; the root (path
        ``.``) first when a layer gave it a header."""
        if self.root.info is not None:
            yield ".", self.root
        yield from _walk(self.root, "")

    # -- helpers ----------------------------------------------------------------------------

    def _whiteout(self, directory: Node, leaf: str, layer: int) -> None:
        assert directory.children is not None
        if leaf == OPAQUE:
            for name in [n for n, c in directory.children.items() if _prune(c, layer)]:
                del directory.children[name]
            return
        target = directory.children.get(leaf[len(WHITEOUT) :])
        if target is not None and _prune(target, layer):
            del directory.children[leaf[len(WHITEOUT) :]]

    def _link(self, member: tarfile.TarInfo, layer: int) -> Inode | None:
        """The inode a hard link names (link(2) does not follow a final symlink)."""
        *parents, leaf = _parts(member.linkname) or [""]
        directory = self._directory(parents, layer, create=False, name=member.name)
        target = (
            None
            if directory is None or directory.children is None
            else (directory.children.get(leaf))
        )
        if target is None or target.inode is None:
            raise LayerError(f"{member.name}: hard link to {member.linkname!r}, not a file")
        return target.inode

    def _directory(self, parts: list[str], layer: int, *, create: bool, name: str) -> Node | None:
        """The directory ``parts`` names, resolved inside the tree (symlinks followed, ``..``
        never above the root); missing ones implied when ``create``, else None."""
        stack, todo, hops = [self.root], list(parts), 0
        while todo:
            part = todo.pop(0)
            if part == "..":
                if len(stack) > 1:
                    stack.pop()
                continue
            children = stack[-1].children
            assert children is not None
            child = children.get(part)
            if child is None:
                if not create:
                    return None
                child = children[part] = Node(layer)
            elif child.inode is not None and child.inode.info.issym():
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise LayerError(f"{name}: too many levels of symbolic links")
                target = child.inode.info.linkname
                if target.startswith("/"):
                    del stack[1:]
                todo[:0] = _parts(target)
                continue
            elif not child.is_dir:
                if not create:
                    return None
                raise LayerError(f"{name}: a parent directory is a file in a lower layer")
            stack.append(child)
        return stack[-1]


def _parts(name: str) -> list[str]:
    """A tar name's components (``./``, ``/`` and empty ones dropped; ``..`` kept)."""
    return [p for p in name.split("/") if p not in ("", ".")]


def _prune(node: Node, layer: int) -> bool:
    """Remove what lower layers put at and under ``node``; True when nothing of it stays
    (what ``layer`` itself added stays, and with it the directories that hold it)."""
    if node.children:
        for name in [n for n, c in node.children.items() if _prune(c, layer)]:
            del node.children[name]
    return node.layer != layer and not node.children


def _walk(node: Node, prefix: str) -> Iterator[tuple[str, Node]]:
    assert node.children is not None
    for name in sorted(node.children):
        child = node.children[name]
        path = f"{prefix}{name}"
        yield path, child
        if child.children is not None:
            yield from _walk(child, f"{path}/")
