"""A power cut that loses what was not synced: a trace of file-system mutations, and the disks it can leave.

:class:`Recorder` runs code (the update guard, the stager) on a real directory and records, in order, every
mutation made under it: from Python (``open``/``io.open``/tarfile's own ``open`` for writing, ``os.open`` with
``O_CREAT``, ``os.mkdir``, ``os.symlink``, ``os.rename``/``os.replace``, ``os.unlink``/``os.remove``,
``os.rmdir``, with or without ``dir_fd``, hence also ``pathlib`` and ``shutil.rmtree``, which call these), the
data written (read back before the next recorded call, so a write is ordered before whatever follows it), and
``os.fsync``/``os.fdatasync`` of files and directories. What a child process (``python -m venv``, ``pip``)
does is taken as the difference of the tree before and after it, in top-down order: it syncs nothing, so only
the order among its own unsynced writes is chosen. At the end the recorder replays its trace and compares the
result with the real tree, content included: a mutation it did not see fails the test rather than going
unchecked.

:class:`Trace` then gives, for every cut instant (every prefix of the trace), the disks a power cut there may
leave. Two families, both allowed by POSIX (only ``fsync`` promises anything):

``journal``
    ext4 ``data=ordered`` with delayed allocation, as in ALICE's abstract persistence model (Pillai et al.,
    OSDI 2014): name operations (create, mkdir, symlink, rename, unlink, rmdir) reach the disk in their order,
    so the disk holds a *prefix* of them — every prefix from the last directory fsync to the cut (a file's
    fsync is not counted as a barrier, which ext4 would: this is a superset of ext4's outcomes); a rename is
    atomic. Data not followed by an fsync of its file is lost (the file is empty, or holds what its last
    fsync saved: the zero-length-file outcome of delayed allocation, without ``auto_da_alloc``'s rescue), or
    kept: both are enumerated.
``posix``
    The least POSIX promises: each directory holds the entries it had at its last fsync (a directory made
    during the trace and never synced is empty, and absent if its parent was not synced), each file what its
    last fsync saved. Nothing unsynced survives.

Files here are smaller than a page, so a write is whole or lost; torn multi-page writes are not modelled. Nor
are permissions and times.
"""

from __future__ import annotations

import bisect
import builtins
import contextlib
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

META = ("mkdir", "create", "symlink", "rename", "unlink", "rmdir")
ROOT = 0  # the node of the recorded directory itself


@dataclass(frozen=True)
class Op:
    kind: str  # one of META, or "write" (a file's whole content from now on), or "fsync"
    path: str = ""  # relative to the recorded directory ("" is the directory itself)
    dest: str = ""  # rename: the new path; symlink: its target
    node: int = -1  # create, mkdir, symlink: the new node; write, fsync: the node
    data: bytes = b""
    by: str = ""  # which call made it, for the messages


@dataclass
class Tree:
    """Names only: directories as {name: node}, each node's kind, each symlink's target."""

    dirs: dict[int, dict[str, int]]
    kinds: dict[int, str]
    links: dict[int, str]

    def copy(self) -> Tree:
        return Tree({d: dict(e) for d, e in self.dirs.items()}, dict(self.kinds), dict(self.links))

    def lookup(self, path: str) -> int | None:
        node = ROOT
        for name in filter(None, path.split("/")):
            entries = self.dirs.get(node)
            if entries is None or name not in entries:
                return None
            node = entries[name]
        return node

    def parent(self, path: str) -> tuple[int | None, str]:
        head, _, name = path.rpartition("/")
        return self.lookup(head), name

    def apply(self, op: Op) -> None:
        """A name operation; one whose directory is gone on this disk (it was never synced) changes nothing."""
        parent, name = self.parent(op.path)
        if parent is None or parent not in self.dirs:
            return
        entries = self.dirs[parent]
        if op.kind in ("mkdir", "create", "symlink"):
            entries[name] = op.node
            self.kinds[op.node] = {"mkdir": "dir", "create": "file", "symlink": "link"}[op.kind]
            if op.kind == "mkdir":
                self.dirs.setdefault(op.node, {})
            if op.kind == "symlink":
                self.links[op.node] = op.dest
        elif op.kind in ("unlink", "rmdir"):
            entries.pop(name, None)
        elif op.kind == "rename":
            node = entries.pop(name, None)
            to_parent, to_name = self.parent(op.dest)
            if node is not None and to_parent is not None and to_parent in self.dirs:
                self.dirs[to_parent][to_name] = node

    def walk(self, node: int = ROOT, prefix: str = "") -> Iterator[tuple[str, int]]:
        """(path, node) of everything under ``node``, parents first."""
        for name, child in sorted(self.dirs.get(node, {}).items()):
            path = f"{prefix}{name}"
            yield path, child
            if self.kinds.get(child) == "dir":
                yield from self.walk(child, path + "/")


@dataclass
class Disk:
    """What a power cut left: names (:class:`Tree`) and each file's content. ``label`` says which cut."""

    tree: Tree
    content: Callable[[int], bytes]
    label: str
    family: str = ""  # "journal" or "posix"
    cut: int = 0  # the cut comes after this many operations of the trace
    names: int = 0  # journal: how many name operations reached the disk

    def exists(self, path: str) -> bool:
        return self.tree.lookup(path) is not None

    def kind(self, path: str) -> str | None:
        node = self.tree.lookup(path)
        return None if node is None else self.tree.kinds.get(node)

    def read(self, path: str) -> bytes | None:
        node = self.tree.lookup(path)
        return None if node is None or self.tree.kinds.get(node) != "file" else self.content(node)

    def readlink(self, path: str) -> str | None:
        node = self.tree.lookup(path)
        return None if node is None else self.tree.links.get(node)

    def listdir(self, path: str) -> list[str]:
        node = self.tree.lookup(path)
        return sorted(self.tree.dirs.get(node, {})) if node is not None else []

    def files(self, under: str = "") -> dict[str, tuple[str, bytes | str | None]]:
        """{path: (kind, content or link target)} under ``under``."""
        start = self.tree.lookup(under)
        if start is None:
            return {}
        out: dict[str, tuple[str, bytes | str | None]] = {}
        for path, node in self.tree.walk(start, f"{under}/" if under else ""):
            kind = self.tree.kinds[node]
            out[path] = (kind, self.content(node) if kind == "file" else self.tree.links.get(node))
        return out

    def materialize(self, root: Path) -> None:
        """Make ``root`` hold exactly this disk (the next boot's view)."""
        for child in list(root.iterdir()):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        for path, (kind, value) in self.files().items():
            target = root / path
            if kind == "dir":
                target.mkdir()
            elif kind == "link":
                target.symlink_to(str(value))
            else:
                target.write_bytes(value if isinstance(value, bytes) else b"")


@dataclass
class Trace:
    """The recorded operations on top of the directory as it was (all of it on disk: synced before)."""

    initial: Tree
    initial_content: dict[int, bytes]
    ops: list[Op] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._index()

    def _index(self) -> None:
        self.written: dict[int, tuple[list[int], list[bytes]]] = {}
        self.synced: dict[int, tuple[list[int], list[bytes]]] = {}
        for node, data in self.initial_content.items():
            self.written[node] = ([-1], [data])
            self.synced[node] = ([-1], [data])
        self.meta = [i for i, op in enumerate(self.ops) if op.kind in META]
        self.born: dict[int, int] = {}  # node -> how many name operations precede its creation
        self.dir_nodes = {n for n, k in self.initial.kinds.items() if k == "dir"} | {ROOT}
        for count, i in enumerate(self.meta):
            op = self.ops[i]
            if op.kind in ("mkdir", "create", "symlink"):
                self.born[op.node] = count
            if op.kind == "mkdir":
                self.dir_nodes.add(op.node)
        for i, op in enumerate(self.ops):
            if op.kind == "write":
                indices, datas = self.written.setdefault(op.node, ([], []))
                indices.append(i)
                datas.append(op.data)
                if op.by == "truncate":  # on disk at once, at worst
                    indices, datas = self.synced.setdefault(op.node, ([], []))
                    indices.append(i)
                    datas.append(b"")
            elif op.kind == "fsync" and op.node not in self.dir_nodes:
                data = self._latest(op.node, i)
                indices, datas = self.synced.setdefault(op.node, ([], []))
                indices.append(i)
                datas.append(data)

    def without(self, keep: Callable[[Op], bool]) -> Trace:
        """The same trace with only the operations ``keep`` accepts (to show what a missing fsync costs)."""
        return Trace(self.initial, self.initial_content, [op for op in self.ops if keep(op)])

    @staticmethod
    def _at(versions: dict[int, tuple[list[int], list[bytes]]], node: int, cut: int) -> bytes:
        indices, datas = versions.get(node, ([], []))
        position = bisect.bisect_left(indices, cut) - 1
        return datas[position] if position >= 0 else b""

    def _latest(self, node: int, cut: int) -> bytes:
        return self._at(self.written, node, cut)

    def final(self) -> Disk:
        tree = self.initial.copy()
        for i in self.meta:
            tree.apply(self.ops[i])
        end = len(self.ops)
        return Disk(tree, lambda node: self._at(self.written, node, end), "no cut")

    def disks(self) -> Iterator[Disk]:
        """Every disk a power cut may leave, at every instant of the trace (each :class:`Disk` is valid until the
        next one is asked for: they share their names)."""
        yield from self._journal()
        yield from self._posix()

    def _journal(self) -> Iterator[Disk]:
        ops, meta = self.ops, self.meta
        dir_syncs = [i for i, op in enumerate(ops) if op.kind == "fsync" and op.node in self.dir_nodes]
        # A write or a file's fsync at position p gives new disks for each m (name ops on disk) such that the
        # file exists after the first m (born before), the cut after p holds those m, and no directory
        # fsync came between the (m+1)-th name op and p (else it would be on disk too).
        cuts: dict[int, list[int]] = {}
        for p, op in enumerate(ops):
            if op.kind not in ("write", "fsync") or op.node in self.dir_nodes:
                continue
            synced_before = bisect.bisect_left(dir_syncs, p)
            lowest = bisect.bisect_left(meta, dir_syncs[synced_before - 1]) if synced_before else 0
            for m in range(max(lowest, self.born.get(op.node, -1) + 1), bisect.bisect_left(meta, p) + 1):
                cuts.setdefault(m, []).append(p + 1)
        tree = self.initial.copy()
        for m in range(len(meta) + 1):
            start = meta[m - 1] + 1 if m else 0  # the cut right after the m-th name op
            for k in [start, *cuts.get(m, [])]:
                where = f"cut after op {k}/{len(ops)} ({ops[k - 1].kind} {ops[k - 1].path} by {ops[k - 1].by})" \
                    if k else "cut before the first op"  # fmt: skip
                for lost, versions in (("unsynced data lost", self.synced), ("all data kept", self.written)):
                    yield Disk(tree, lambda node, v=versions, k=k: self._at(v, node, k),
                               f"journal: {where}, first {m} of {len(meta)} name ops on disk, {lost}",
                               "journal", k, m)  # fmt: skip
            if m < len(meta):
                tree.apply(ops[meta[m]])

    def _posix(self) -> Iterator[Disk]:
        durable = {d: dict(e) for d, e in self.initial.dirs.items()}
        live = self.initial.copy()
        tree = Tree(durable, live.kinds, live.links)  # names as of each directory's last fsync
        yield Disk(tree, lambda node: self._at(self.synced, node, 0), "posix: cut before the first op", "posix")
        for k, op in enumerate(self.ops, start=1):
            if op.kind in META:
                live.apply(op)
                if op.kind == "mkdir":
                    durable.setdefault(op.node, {})
            elif op.kind == "fsync":
                if op.node in self.dir_nodes:
                    durable[op.node] = dict(live.dirs.get(op.node, {}))
                where = f"posix: cut after op {k}/{len(self.ops)} (fsync {op.path} by {op.by})"
                yield Disk(tree, lambda node, k=k: self._at(self.synced, node, k), where, "posix", k)
        end = len(self.ops)
        yield Disk(tree, lambda node: self._at(self.synced, node, end), "posix: cut at the end", "posix", end)


class Recorder:
    """Records the mutations under ``root`` made inside ``with recorder:``; then ``recorder.trace``."""

    def __init__(self, root: Path) -> None:
        self.root = os.path.realpath(root)
        self._next = 1
        self._real: dict[tuple[int, int], int] = {}  # (st_dev, st_ino) -> node
        self.tree = Tree({ROOT: {}}, {ROOT: "dir"}, {})
        self.content: dict[int, bytes] = {}
        self._stat: dict[int, tuple[int, int, int]] = {}  # node -> (ino, size, mtime_ns) when last read
        self._watch: dict[int, str] = {}  # files opened for writing: node -> path, read back before each op
        st = os.lstat(self.root)
        self._real[(st.st_dev, st.st_ino)] = ROOT
        self._scan_initial()
        self.trace = Trace(self.tree.copy(), dict(self.content))
        self._saved: list[tuple[Any, str, Any]] = []
        self._busy = False

    # -- the tree as it is ---------------------------------------------------------------------------------

    def _new_node(self, st: os.stat_result) -> int:
        node = self._next
        self._next += 1
        self._real[(st.st_dev, st.st_ino)] = node  # an inode number freed and reused is a new node
        return node

    def _scan_initial(self) -> None:
        for directory, dirnames, filenames in os.walk(self.root):
            for name in sorted(dirnames + filenames):
                path = os.path.join(directory, name)
                st = os.lstat(path)
                parent = self._real[(os.lstat(directory).st_dev, os.lstat(directory).st_ino)]
                node = self._new_node(st)
                self.tree.dirs[parent][name] = node
                if os.path.islink(path):
                    self.tree.kinds[node], self.tree.links[node] = "link", os.readlink(path)
                elif os.path.isdir(path):
                    self.tree.kinds[node] = "dir"
                    self.tree.dirs[node] = {}
                else:
                    self.tree.kinds[node] = "file"
                    self.content[node] = _read(path)
                    self._stat[node] = (st.st_ino, st.st_size, st.st_mtime_ns)

    def _rel(self, path: Any, dir_fd: int | None = None) -> str | None:
        """``path`` relative to the root, or None when it is outside (then it is not recorded)."""
        if isinstance(path, int):
            return None
        text = os.fsdecode(os.fspath(path))
        if dir_fd is not None and not os.path.isabs(text):
            text = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), text)
        text = os.path.abspath(text)
        head, name = os.path.split(text)
        full = os.path.join(os.path.realpath(head), name)
        if full == self.root:
            return ""
        return full[len(self.root) + 1 :] if full.startswith(self.root + os.sep) else None

    def _emit(self, op: Op) -> None:
        self.trace.ops.append(op)
        if op.kind in ("unlink", "rmdir", "rename"):
            node = self.tree.lookup(op.path)
            replaced = self.tree.lookup(op.dest) if op.kind == "rename" else None
            if replaced is not None and replaced != node:
                self._watch.pop(replaced, None)
            if node in self._watch:
                if op.kind == "rename":
                    self._watch[node] = op.dest
                else:
                    del self._watch[node]
        if op.kind in META:
            self.tree.apply(op)
        elif op.kind == "write":
            self.content[op.node] = op.data

    def _read_back(self) -> None:
        """The data written to the files open for writing since the last operation, as an operation before it."""
        for node, rel in list(self._watch.items()):
            path = os.path.join(self.root, rel)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                self._watch.pop(node, None)
                continue
            if self._real.get((st.st_dev, st.st_ino)) != node:
                self._watch.pop(node, None)
                continue
            data = _read(path)
            self._stat[node] = (st.st_ino, st.st_size, st.st_mtime_ns)
            if data != self.content.get(node, b""):
                self._emit(Op("write", rel, node=node, data=data, by="write"))

    def _node_of(self, rel: str) -> int:
        st = os.lstat(os.path.join(self.root, rel))
        return self._new_node(st)

    def _diff(self, by: str) -> list[Op]:
        """Operations that turn the recorded tree into the real one (what a child process did, or what the
        recorder missed)."""
        ops: list[Op] = []
        seen: set[str] = set()
        for directory, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                path = os.path.join(directory, name)
                rel = path[len(self.root) + 1 :]
                seen.add(rel)
                st = os.lstat(path)
                known = self._real.get((st.st_dev, st.st_ino))
                node = self.tree.lookup(rel)
                if node is not None and known == node:
                    if self.tree.kinds[node] == "file" and self._stat.get(node) != (st.st_ino, st.st_size,
                                                                                     st.st_mtime_ns):  # fmt: skip
                        data = _read(path)
                        self._stat[node] = (st.st_ino, st.st_size, st.st_mtime_ns)
                        if data != self.content.get(node, b""):
                            ops.append(Op("write", rel, node=node, data=data, by=by))
                    continue
                if node is not None:  # replaced by another file of that name
                    ops.append(Op("rmdir" if self.tree.kinds[node] == "dir" else "unlink", rel, by=by))
                new = self._new_node(st)
                if os.path.islink(path):
                    ops.append(Op("symlink", rel, dest=os.readlink(path), node=new, by=by))
                elif os.path.isdir(path):
                    ops.append(Op("mkdir", rel, node=new, by=by))
                else:
                    ops.append(Op("create", rel, node=new, by=by))
                    ops.append(Op("write", rel, node=new, data=_read(path), by=by))
                    self._stat[new] = (st.st_ino, st.st_size, st.st_mtime_ns)
        gone = [path for path, _ in self.tree.walk() if path not in seen]
        for path in reversed(gone):  # children first
            node = self.tree.lookup(path)
            ops.append(Op("rmdir" if self.tree.kinds.get(node or -1) == "dir" else "unlink", path, by=by))
        return ops

    def _take_diff(self, by: str) -> list[Op]:
        ops = self._diff(by)
        for op in ops:
            self._emit(op)
        return ops

    # -- the calls it wraps ----------------------------------------------------------------------------------

    def _around(self, name: str, real: Callable[..., Any], before: Callable[..., list[Op]] | None = None,
                after: Callable[..., list[Op]] | None = None) -> Callable[..., Any]:  # fmt: skip
        recorder = self

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if recorder._busy:
                return real(*args, **kwargs)
            recorder._busy = True
            try:
                recorder._read_back()
                planned = before(*args, **kwargs) if before else []
                result = real(*args, **kwargs)
                for op in planned:
                    recorder._emit(op)
                for op in after(result, *args, **kwargs) if after else []:
                    recorder._emit(op)
                return result
            finally:
                recorder._busy = False

        wrapper.__name__ = name
        return wrapper

    def _open_after(self, by: str) -> Callable[..., list[Op]]:
        def after(result: Any, file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> list[Op]:
            if not any(c in mode for c in "wax+"):
                return []
            rel = self._rel(file)
            if rel is None:
                return []
            return self._opened(rel, result.fileno(), by, truncate="w" in mode)

        return after

    def _opened(self, rel: str, fd: int, by: str, truncate: bool) -> list[Op]:
        st = os.fstat(fd)
        node = self._real.get((st.st_dev, st.st_ino))
        ops = []
        if node is None or self.tree.lookup(rel) != node:
            node = self._new_node(st)
            ops.append(Op("create", rel, node=node, by=by))
        elif truncate and self.content.get(node):
            # Truncating is a name-level change ext4 journals at once; the new data may follow, or not.
            ops.append(Op("write", rel, node=node, data=b"", by="truncate"))
        self._watch[node] = rel
        self._stat.pop(node, None)
        return ops

    def _os_open(self, real: Callable[..., Any]) -> Callable[..., Any]:
        recorder = self
        wrapped = self._around("open", real)

        def os_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
            if recorder._busy or not flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR | os.O_TRUNC):
                return wrapped(path, flags, mode, dir_fd=dir_fd)
            fd = wrapped(path, flags, mode, dir_fd=dir_fd)
            rel = recorder._rel(path, dir_fd)
            if rel is not None and not os.path.isdir(f"/proc/self/fd/{fd}"):
                for op in recorder._opened(rel, fd, "os.open", truncate=bool(flags & os.O_TRUNC)):
                    recorder._emit(op)
            return fd

        return os_open

    def _fsync(self, real: Callable[[int], None], name: str) -> Callable[[int], None]:
        recorder = self

        def fsync(fd: Any) -> None:
            fd = fd if isinstance(fd, int) else fd.fileno()
            if recorder._busy:
                return real(fd)
            recorder._busy = True
            try:
                recorder._read_back()
                st = os.fstat(fd)
                node = recorder._real.get((st.st_dev, st.st_ino))
                real(fd)
                if node is not None:
                    rel = os.readlink(f"/proc/self/fd/{fd}")
                    rel = rel[len(recorder.root) + 1 :] if rel.startswith(recorder.root + os.sep) else ""
                    if recorder.tree.kinds.get(node) == "file" and recorder._stat.get(node) != (
                        st.st_ino, st.st_size, st.st_mtime_ns):  # fmt: skip
                        data = _read(f"/proc/self/fd/{fd}")
                        recorder._stat[node] = (st.st_ino, st.st_size, st.st_mtime_ns)
                        if data != recorder.content.get(node, b""):
                            recorder._emit(Op("write", rel, node=node, data=data, by=name))
                    recorder._emit(Op("fsync", rel, node=node, by=name))
            finally:
                recorder._busy = False

        return fsync

    def _name_op(self, kind: str, by: str) -> Callable[..., list[Op]]:
        def before(*args: Any, **kwargs: Any) -> list[Op]:
            if kind == "rename":
                src = self._rel(args[0], kwargs.get("src_dir_fd"))
                dst = self._rel(args[1], kwargs.get("dst_dir_fd"))
                if src is None or dst is None:
                    return []
                return [Op("rename", src, dest=dst, by=by)]
            if kind == "symlink":
                rel = self._rel(args[1], kwargs.get("dir_fd"))
                return [] if rel is None else [Op("symlink", rel, dest=os.fspath(args[0]), by=by)]
            rel = self._rel(args[0], kwargs.get("dir_fd"))
            return [] if rel is None else [Op(kind, rel, by=by)]

        return before

    def _with_node(self, planned: list[Op]) -> list[Op]:
        return [Op(op.kind, op.path, op.dest, self._node_of(op.path), by=op.by)
                if op.kind in ("mkdir", "symlink") else op for op in planned]  # fmt: skip

    def _subprocess_run(self, real: Callable[..., Any]) -> Callable[..., Any]:
        recorder = self

        def run(*args: Any, **kwargs: Any) -> Any:
            if recorder._busy:
                return real(*args, **kwargs)
            recorder._busy = True
            try:
                recorder._read_back()
                missed = recorder._diff("?")
                assert not missed, f"mutations the recorder did not see: {missed[:5]}"
                result = real(*args, **kwargs)
                command = args[0] if args else kwargs.get("args")
                recorder._take_diff(f"child {Path(str(command[0])).name} {' '.join(map(str, command[1:3]))}")
                return result
            finally:
                recorder._busy = False

        return run

    def __enter__(self) -> Recorder:
        def patch(owner: Any, name: str, value: Any) -> None:
            self._saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, value)

        real_open = builtins.open
        opener = self._around("open", real_open, after=self._open_after("open"))
        patch(builtins, "open", opener)
        patch(io, "open", opener)
        patch(tarfile, "bltn_open", opener)
        patch(os, "open", self._os_open(os.open))
        patch(os, "fsync", self._fsync(os.fsync, "fsync"))
        patch(os, "fdatasync", self._fsync(os.fdatasync, "fdatasync"))
        for name, kind in (("replace", "rename"), ("rename", "rename"), ("unlink", "unlink"), ("remove", "unlink"),
                           ("rmdir", "rmdir")):  # fmt: skip
            patch(os, name, self._around(name, getattr(os, name), before=self._name_op(kind, f"os.{name}")))
        for name in ("mkdir", "symlink"):
            before = self._name_op(name, f"os.{name}")
            patch(os, name, self._around(name, getattr(os, name), after=lambda _r, *a, b=before, **k: self._with_node(
                b(*a, **k))))  # fmt: skip
        patch(subprocess, "run", self._subprocess_run(subprocess.run))
        return self

    def __exit__(self, *exc: object) -> None:
        self._read_back()
        for owner, name, value in reversed(self._saved):
            setattr(owner, name, value)
        self._saved.clear()
        if exc[0] is None:
            self.check()

    def check(self) -> None:
        """The trace, replayed, gives the real tree: the recorder saw every mutation."""
        missed = self._diff("?")
        assert not missed, f"mutations the recorder did not see: {missed[:5]}"
        self.trace._index()
        replayed = self.trace.final().files()
        real = {}
        for directory, dirnames, filenames in os.walk(self.root):
            for name in dirnames + filenames:
                path = os.path.join(directory, name)
                rel = path[len(self.root) + 1 :]
                if os.path.islink(path):
                    real[rel] = ("link", os.readlink(path))
                elif os.path.isdir(path):
                    real[rel] = ("dir", None)
                else:
                    real[rel] = ("file", _read(path))
        assert replayed == real, sorted(set(replayed.items()) ^ set(real.items()))[:5]


def _read(path: str) -> bytes:
    with contextlib.suppress(FileNotFoundError), io.FileIO(path, "r") as f:
        return f.readall()
    return b""
