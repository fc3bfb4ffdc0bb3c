"""One run's claim on its output folder (``simulate --out DIR``).

Before any work, ``RunFolder(DIR, ...)`` as a context manager:

1. creates ``DIR`` and proves it writable (a probe file), so that an
   unwritable ``--out`` fails in one line before the run, not after it;
2. takes an exclusive lock (``DIR/.edgesnn.lock``, ``flock``: released by the
   kernel if the process dies, so a killed run leaves no stale lock); a
   second run into the same folder is refused while the first one holds it;
3. refuses a folder that holds another run's results (the files a run owns:
   ``OWNED``) unless told to overwrite them, in which case it deletes them
   first, so no file of an earlier run is left beside this run's report. A
   run that resumes from the checkpoint inside ``DIR`` continues the run that
   wrote it and may write there without ``--overwrite``.

Files that are not a run's (anything else in ``DIR``) are never touched.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edgesnn.errors import OutputError

#: the files a simulate run writes into its folder
OWNED = ("report.json", "report.md", "learning_curve.png", "energy.png", "trace.npz",
         "checkpoint.npz")
LOCK_NAME = ".edgesnn.lock"


def _os_error(path: Path, exc: OSError) -> OutputError:
    return OutputError(f"{path}: cannot write there ({exc.strerror or exc}); choose another "
                       "--out")


def probe_writable(folder: Path, named: Path | None = None) -> bool:
    """Create ``folder`` (and its parents) and write and remove a probe file in it, or raise
    ``OutputError`` naming ``named`` (default ``folder``). Returns whether it was created."""
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".edgesnn-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise _os_error(named or folder, exc) from None
    return created


class RunFolder:
    """The output folder of one run: writable, locked, holding no other run's files."""

    def __init__(self, path: str | Path, overwrite: bool = False,
                 resume: str | Path | None = None):
        self.path = Path(path)
        self.overwrite = overwrite
        self.resume = Path(resume) if resume else None
        self._fd: int | None = None
        self._created = False

    def __enter__(self) -> "RunFolder":
        self._make_writable()
        try:
            self._lock()
            self._claim()
        except BaseException as exc:
            self.__exit__(type(exc), exc, None)
            raise
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self._unlock()
        if exc_type is not None and self._created:
            try:
                self.path.rmdir()           # a failed run leaves no empty folder it made
            except OSError:
                pass

    # -- steps ----------------------------------------------------------------
    def _make_writable(self) -> None:
        p = self.path
        if p.exists() and not p.is_dir():
            raise OutputError(f"{p}: --out must be a folder, and this is a file")
        self._created = probe_writable(p)

    def _lock(self) -> None:
        import fcntl

        lock = self.path / LOCK_NAME
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise _os_error(self.path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise OutputError(f"{self.path}: another edgesnn run (pid {holder}) is writing "
                              "there; wait for it to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def _unlock(self) -> None:
        if self._fd is not None:
            try:
                (self.path / LOCK_NAME).unlink(missing_ok=True)
            except OSError:
                pass
            os.close(self._fd)          # closing releases the flock
            self._fd = None

    def _claim(self) -> None:
        """Refuse or clear another run's files (see the module docstring)."""
        found = [n for n in OWNED if (self.path / n).exists()]
        if not found:
            return
        mine = self.resume is not None and self.resume.resolve().parent == self.path.resolve()
        if self.overwrite:
            keep = self.resume.resolve() if mine else None
            for n in found:
                f = self.path / n
                if keep is None or f.resolve() != keep:
                    try:
                        f.unlink()
                    except OSError as exc:
                        raise _os_error(f, exc) from None
            return
        if mine:
            return
        raise OutputError(f"{self.path}: holds another run's results ({', '.join(found)}); "
                          "give --overwrite to replace them, or choose another --out")
