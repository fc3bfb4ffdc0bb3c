"""A sweep folder: a manifest, one JSON file per finished task, nothing partial.

Layout of ``DIR``::

    manifest.json        what the folder is for: grid, base spec, base device, run
                         options, and the ids of every task in order
    points/ID.json       one fixed-point result per grid point and seed
    float/ID.json        one float baseline per spec variant and seed
    summary.md, summary.json, *.png     written by ``summary`` / ``figures``

Every file is written with ``report.write_atomic`` (a temporary file and a
rename): a result file is complete or absent. A folder started by another grid,
spec, device or options is refused with one line naming the first key that
differs (``train.first_difference``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgesnn.errors import OutputError
from edgesnn.report import to_json, write_atomic

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
SUBDIR = {"fixed": "points", "float": "float"}


def manifest(identity: dict, work, info: dict | None = None) -> dict:
    """The manifest of a sweep: its identity (what a resume must match), ``info`` (names
    and swept keys, for the summary; not compared) and its task list (ids, points,
    references)."""
    return {"manifest_version": MANIFEST_VERSION, "identity": identity, "info": info or {},
            "fixed": [{"id": t["id"], "float_id": t["float_id"], "seed": t["seed"],
                       "hw": t["hw"], "point": t["point"]} for t in work.fixed],
            "floats": [{"id": t["id"], "seed": t["seed"]} for t in work.floats.values()]}


def open_folder(out: Path, man: dict) -> None:
    """Write the manifest of a new folder, or check an existing one matches ``man``.

    A folder whose manifest differs but that holds no result yet (a sweep that failed
    before its first run finished) is started afresh with the new manifest.

    OutputError in one line naming what changed when the folder was started with other
    inputs (or is not a sweep folder at all but holds files).
    """
    from edgesnn.train import first_difference

    path = out / MANIFEST
    if path.exists():
        there = read_json(path)
        if there.get("manifest_version") != MANIFEST_VERSION:
            raise OutputError(f"{path}: written by another version of edgesnn; choose "
                              "another --out")
        diff = first_difference(there.get("identity", {}), man["identity"])
        if diff is not None and not (done_ids(out, "fixed") or done_ids(out, "float")):
            write_atomic(path, to_json(man))     # started, nothing finished: start afresh
            return
        if diff is None and there.get("info") != man.get("info"):
            write_atomic(path, to_json(man))     # same inputs (a renamed grid file)
        if diff is not None:
            key, a, b = diff
            raise OutputError(f"{out}: this sweep folder was started with other inputs: "
                              f"{key} was {_show(a)}, now {_show(b)}; rerun with the same "
                              "inputs to resume, or choose another --out")
        return
    if (out / "points").exists() or (out / "float").exists():
        raise OutputError(f"{out}: holds sweep results but no {MANIFEST}; choose another --out")
    write_atomic(path, to_json(man))


def _show(v: Any) -> str:
    s = json.dumps(v) if not isinstance(v, str) else repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise OutputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OutputError(f"{path}: unreadable ({exc})") from None


def result_path(out: Path, kind: str, task_id: str) -> Path:
    return Path(out) / SUBDIR[kind] / f"{task_id}.json"


def done_ids(out: Path, kind: str) -> set[str]:
    """Ids of the finished tasks of one kind (their result files exist)."""
    d = Path(out) / SUBDIR[kind]
    if not d.is_dir():
        return set()
    return {p.stem for p in d.glob("*.json") if not p.name.startswith(".")}


def write_result(out: Path, result: dict) -> Path:
    """One task's result file, atomically."""
    return write_atomic(result_path(out, result["kind"], result["id"]), to_json(result))


def load_results(out: Path) -> tuple[dict, list[dict], dict[str, dict]]:
    """``(manifest, fixed results in manifest order, float results by id)`` of a folder;
    tasks not finished yet are left out."""
    out = Path(out)
    man = read_json(out / MANIFEST)
    fixed = [read_json(p) for t in man["fixed"]
             if (p := result_path(out, "fixed", t["id"])).exists()]
    floats = {t["id"]: read_json(p) for t in man["floats"]
              if (p := result_path(out, "float", t["id"])).exists()}
    return man, fixed, floats


def without_timing(result: dict) -> dict:
    """A result without what depends on the machine and the moment (for comparisons)."""
    return {k: v for k, v in result.items() if k != "timing"}
