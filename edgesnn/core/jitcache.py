"""numba's disk cache of the kernels, keyed to a fingerprint of every module they read.

numba checks a cached function against its own source file only: a changed constant
in another module (``rng.LANES``, ``constants.ALPHA_FRAC``, a ``counters`` index) or a
changed ``@njit`` callee in another file would load stale machine code. Here the
kernels' cache goes to a folder named by a hash of the source bytes of those modules
(``kernel_sources``) and of the numba options that change the generated code
(``NUMBA_BOUNDSCHECK``, ``NUMBA_OPT``): ``fp-<16 hex digits>-b<0|1>o<level>``, inside
the folder numba itself would use (``NUMBA_CACHE_DIR``, else the module's
``__pycache__``, else the user cache directory). A new fingerprint's folder is
compiled into afresh; the folders of other sources are then removed.

Mechanism: a cache locator placed first in numba's list that answers only for files of
a registered directory (``register``; importing this module registers ``edgesnn/core``,
which ``edgesnn/core/__init__.py`` does before any kernel is defined) and leaves every
other function to numba's own locators.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from numba.core import caching, config

#: the edgesnn package folder
PACKAGE = Path(__file__).resolve().parents[1]
#: modules of edgesnn/core the kernels never read (Python run at build and load only):
#: editing them recompiles nothing. Every other module of core/ is hashed.
PYTHON_ONLY = ("engine.py", "bounds.py", "jitcache.py")
#: modules outside core/ whose constants or @njit functions the kernels use
OUTSIDE = ("fixed.py", "counters.py")
FOLDER_PREFIX = "fp-"
FOLDER_DIGITS = 16


def kernel_sources(package: Path = PACKAGE) -> list[Path]:
    """The files whose bytes the fingerprint hashes, for a package folder ``package``."""
    core = sorted(p for p in (Path(package) / "core").glob("*.py") if p.name not in PYTHON_ONLY)
    return core + [Path(package) / m for m in OUTSIDE]


def digest(files: list[Path], root: Path) -> str:
    """sha256 of the files' names relative to ``root`` and their bytes (hex)."""
    h = hashlib.sha256()
    for p in files:
        h.update(Path(p).resolve().relative_to(Path(root).resolve()).as_posix().encode())
        h.update(b"\0")
        h.update(Path(p).read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def fingerprint(package: Path = PACKAGE) -> str:
    """The fingerprint of a package folder's kernel sources (its content, not its place)."""
    return digest(kernel_sources(package), package)


def options_tag() -> str:
    """The numba options that change the machine code of a kernel, as a folder suffix."""
    return f"b{int(bool(config.BOUNDSCHECK))}o{int(config.OPT)}"


def folder_name(source_digest: str) -> str:
    return f"{FOLDER_PREFIX}{source_digest[:FOLDER_DIGITS]}-{options_tag()}"


#: registered directory -> cache folder name
_REGISTRY: dict[str, str] = {}
#: numba's cache files: "<module>.<function>-<line>.py<version>.nbi" (index) and ".nbc"
_NUMBA_SUFFIXES = (".nbi", ".nbc")


def _key(directory: str | Path) -> str:
    return os.path.normcase(os.path.realpath(directory))


def register(directory: str | Path, files: list[Path], root: str | Path | None = None) -> str:
    """Cache the ``@njit(cache=True)`` functions of files in ``directory`` under the
    fingerprint of ``files`` (names relative to ``root``, default ``directory``); returns
    the folder name. Functions decorated before the call keep numba's default cache."""
    name = folder_name(digest([Path(f) for f in files], Path(root or directory)))
    _REGISTRY[_key(directory)] = name
    _install()
    return name


def _prune(parent: str, keep: str, modules: set[str]) -> None:
    """Remove what the kernels of ``modules`` left next to their new folder ``keep``: the
    folders of other sources (any options), and numba's own unkeyed cache files of those
    modules (written before the fingerprint, or with it not installed)."""
    stem = keep[:len(FOLDER_PREFIX) + FOLDER_DIGITS]
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        path = os.path.join(parent, name)
        if name.startswith(FOLDER_PREFIX) and not name.startswith(stem):
            shutil.rmtree(path, ignore_errors=True)
        elif name.endswith(_NUMBA_SUFFIXES) and name.split(".", 1)[0] in modules:
            try:
                os.remove(path)
            except OSError:
                pass


def _numba_class(name: str):
    """A class of numba.core.caching by its name (public since numba 0.6x, '_' before)."""
    cls = getattr(caching, name, None) or getattr(caching, "_" + name, None)
    if cls is None:
        raise ImportError(f"numba {caching.__name__} has no {name}: edgesnn cannot key the "
                          "kernel cache to its sources")
    return cls


_BASES = tuple(_numba_class(n) for n in ("UserProvidedCacheLocator", "InTreeCacheLocator",
                                         "UserWideCacheLocator"))


class FingerprintLocator(caching._CacheLocator):
    """A numba cache locator: the folder numba would use, one subfolder per fingerprint."""

    def __init__(self, base, folder: str):
        self._base = base
        self._py_file = base._py_file        # numba's warnings name the source file
        self._path = os.path.join(base.get_cache_path(), folder)
        self._stamp = folder

    def get_cache_path(self) -> str:
        return self._path

    def get_source_stamp(self) -> str:
        return self._stamp

    def get_disambiguator(self) -> str:
        return self._base.get_disambiguator()

    def ensure_cache_path(self) -> None:
        new = not os.path.isdir(self._path)
        super().ensure_cache_path()
        if new:
            modules = {p.stem for p in Path(self._py_file).parent.glob("*.py")}
            _prune(os.path.dirname(self._path), os.path.basename(self._path), modules)

    @classmethod
    def from_function(cls, py_func, py_file):
        folder = _REGISTRY.get(_key(os.path.dirname(os.path.abspath(py_file))))
        if folder is None:
            return None                  # not ours: numba's own locators decide
        for base_cls in _BASES:
            base = base_cls.from_function(py_func, py_file)
            if base is None:
                continue
            self = cls(base, folder)
            try:
                self.ensure_cache_path()
            except OSError:
                continue
            return self
        return None


def _install() -> None:
    impl = _numba_class("CacheImpl")
    if FingerprintLocator not in impl._locator_classes:
        impl._locator_classes.insert(0, FingerprintLocator)


#: the fingerprint of this installation's kernel sources (hex)
FINGERPRINT = fingerprint()
#: the cache folder of edgesnn/core's kernels
FOLDER = register(PACKAGE / "core", kernel_sources(), PACKAGE)
