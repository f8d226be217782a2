"""The output-directory contract: a build writes only inside --out and replaces only what it wrote.

Why: `--out` is a path a user types, and a firmware engineer's project folder (sources, .git,
the checkpoint itself) must survive any typo. So a build
- stages everything in a hidden sibling folder and renames it into place only on success;
- marks its output with a manifest (MANIFEST) listing every file it wrote, and replaces a
  previous output only when that folder carries the manifest and holds nothing else;
- refuses a non-empty folder without the manifest, the current directory or any ancestor of
  it, and any folder holding one of the build's inputs;
- holds a lock while it writes, so of two concurrent builds into one folder one wins and the
  other fails (neither reports a result it did not write);
- creates folders with the user's umask (tempfile.mkdtemp alone would make them 0700).
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import MambaTVMError

MANIFEST = ".mamba_tvm_output.json"


class OutputDirError(MambaTVMError):
    """--out names a folder the build may not write or replace."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _written_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def _manifest(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), list) else None


def check_output_dir(out: Path, inputs: list[Path]) -> None:
    """Refuse an --out the build may not use, with one line saying what to do instead."""
    out = out.resolve()
    cwd = Path.cwd().resolve()
    if _is_within(cwd, out):
        what = "the current directory" if out == cwd else "an ancestor of the current directory"
        raise OutputDirError(f"--out {out} is {what}; the build replaces its output folder as a whole: "
                             f"give a new or empty folder, e.g. --out build/model")
    for inp in inputs:
        if _is_within(inp.resolve(), out):
            raise OutputDirError(f"--out {out} holds the input {inp}; give a folder that does not contain "
                                 "the model (the build replaces its output folder)")
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"--out {out} exists and is not a folder")
    if out.is_dir():
        _check_replaceable(out)


def _check_replaceable(out: Path) -> list[str]:
    """The files of a previous output that may be replaced; OutputDirError if it is not ours alone."""
    present = _written_files(out)
    if not present and not any(out.iterdir()):
        return []
    manifest = _manifest(out)
    if manifest is None:
        shown = ", ".join(present[:3]) + (f" and {len(present) - 3} more" if len(present) > 3 else "")
        raise OutputDirError(f"--out {out} is not empty and was not written by mamba_tvm (no {MANIFEST}; it holds "
                             f"{shown or 'folders'}); give a new or empty folder")
    foreign = sorted(set(present) - set(manifest["files"]) - {MANIFEST})
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputDirError(f"--out {out} holds files the previous build did not write ({shown}); "
                             "move them out or give another folder")
    return present


class OutputDir:
    """`with OutputDir(out, inputs) as staging:` write into `staging`, then `commit()`.

    Leaving the block without commit (an error, Ctrl-C, SIGTERM) removes the staging folder;
    the previous output stays as it was."""

    def __init__(self, out: Path, inputs: list[Path] = ()):
        self.out = Path(out).absolute()
        self.inputs = [Path(p) for p in inputs]
        self.staging: Path | None = None
        self._lock_fd: int | None = None
        self._lock_path = self.out.parent / f".{self.out.name}.lock"

    def __enter__(self) -> Path:
        check_output_dir(self.out, self.inputs)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._lock()
        check_output_dir(self.out, self.inputs)  # again: another build may have written it meanwhile
        self.staging = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.staging-", dir=self.out.parent))
        os.chmod(self.staging, 0o777 & ~_umask())
        return self.staging

    def __exit__(self, *exc) -> None:
        if self.staging is not None and self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)
        self._unlock()

    def commit(self, written_by: dict) -> None:
        """Write the manifest, then swap the staging folder in; the previous output (ours,
        checked again under the lock) is removed file by file from its own manifest."""
        files = _written_files(self.staging)
        (self.staging / MANIFEST).write_text(json.dumps({**written_by, "files": files}, indent=1) + "\n")
        old = None
        if self.out.exists():
            previous = _check_replaceable(self.out)
            old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
            self.out.rename(old)
        self.staging.rename(self.out)
        self.staging = None
        if old is not None:
            _remove_listed(old, previous)

    def _lock(self) -> None:
        """An exclusive, non-blocking flock on `.<out>.lock` beside the output folder."""
        while True:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    raise OutputDirError(f"another mamba_tvm build is writing {self.out} right now; wait for it "
                                         "or give another --out") from None
                raise
            try:  # the holder before us may have removed the file: lock the one on disk
                if os.stat(self._lock_path).st_ino == os.fstat(fd).st_ino:
                    self._lock_fd = fd
                    return
            except FileNotFoundError:
                pass
            os.close(fd)

    def _unlock(self) -> None:
        if self._lock_fd is None:
            return
        try:
            os.unlink(self._lock_path)
        except FileNotFoundError:
            pass
        os.close(self._lock_fd)
        self._lock_fd = None


def _remove_listed(folder: Path, files: list[str]) -> None:
    """Delete the listed files, then the folders they leave empty; anything else stays."""
    for rel in files:
        try:
            (folder / rel).unlink()
        except FileNotFoundError:
            pass
    for d in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        try:
            d.rmdir()
        except OSError:
            pass
    try:
        folder.rmdir()
    except OSError:
        pass
