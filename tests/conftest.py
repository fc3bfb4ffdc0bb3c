"""Shared test helpers: paths, a CLI runner, small device and spec files."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]

# Every process a test starts (the ``edgesnn`` command, ``python -c``, pool and Dask workers)
# imports the edgesnn this process imported. Without this, the console command of a
# non-editable install (CI) imports the site-packages copy, whose numba cache is another
# folder: every kernel it runs was compiled a second time (about 80 signatures, two
# minutes of a CI run).
_PACKAGE_ROOT = str(Path(__import__("edgesnn").__file__).resolve().parents[1])
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_PACKAGE_ROOT, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]])
EXAMPLES = ROOT / "examples"
SHARED = ROOT.parent / "shared"       # the shared folder CI checks out beside the project


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else default


#: Golden-vector cases (``NAME.json`` + ``NAME.npz`` pairs recorded from the S-TLLR authors'
#: code). Set ``EDGESNN_GOLDEN`` to their folder; default ``../shared/golden/stllr``.
GOLDEN = _env_path("EDGESNN_GOLDEN", SHARED / "golden" / "stllr")
GOLDEN_MISSING = (f"golden vectors not found at {GOLDEN}: set EDGESNN_GOLDEN to the folder of "
                  "golden cases (NAME.json + NAME.npz pairs, shipped beside the project in "
                  "shared/golden/stllr)")

#: The Free Spoken Digit Dataset's ``recordings`` folder (3,000 ``DIGIT_SPEAKER_INDEX.wav``).
#: Set ``EDGESNN_FSDD`` to it; default ``../shared/data/fsdd/recordings``.
FSDD = _env_path("EDGESNN_FSDD", SHARED / "data" / "fsdd" / "recordings")
FSDD_MISSING = (f"FSDD recordings not found at {FSDD}: set EDGESNN_FSDD to the 'recordings' "
                "folder of a clone of github.com/Jakobovski/free-spoken-digit-dataset")


def golden_dir() -> Path:
    """The golden-case folder, or skip the test saying how to point at one."""
    if not GOLDEN.is_dir():
        pytest.skip(GOLDEN_MISSING)
    return GOLDEN


def fsdd_dir() -> Path:
    """The FSDD recordings folder, or skip the test saying how to point at one."""
    if not FSDD.is_dir():
        pytest.skip(FSDD_MISSING)
    return FSDD

#: The energy table every test device uses (Horowitz 45 nm, int16 multiply assumed 0.8 pJ).
ENERGY = """
[energy]
lut_read_pj = 1.0
lfsr_pj = 0.1
[energy.add]
int8 = 0.03
int16 = 0.05
int32 = 0.1
fp16 = 0.4
fp32 = 0.9
[energy.mul]
int8 = 0.2
int16 = 0.8
int32 = 3.1
fp16 = 1.1
fp32 = 3.7
"""

TINY_DEVICE = """
[device]
name = "tiny"
clock_mhz = 100.0
decay = "shift"
accumulator_bits = 32

[units]
synaptic_accumulators = 2
mac_units = 1
neuron_units = 1

[[banks]]
name = "main"
size_bytes = 4096
word_bits = 64
read_pj = 10.0
write_pj = 12.0

[formats]
weight   = { signed = true,  int_bits = 1, frac_bits = 6 }
membrane = { signed = true,  int_bits = 3, frac_bits = 12 }
current  = { signed = true,  int_bits = 7, frac_bits = 24 }
trace    = { signed = false, int_bits = 7, frac_bits = 9 }
update   = { signed = true,  int_bits = 7, frac_bits = 24 }

""" + ENERGY + """
[luts]
psi_entries = 16
psi_bits = 8
exp_entries = 16
exp_bits = 16
"""

TINY_SPEC = """
[network]
name = "tiny"
inputs = 3
time_steps = 10

[[layers]]
kind = "recurrent"
size = 4
beta = 0.9
threshold = 0.5

[[layers]]
kind = "readout"
size = 2
beta = 0.9
trace_decay = 0.9

[learning]
signal = "bp"
window = 4
learning_rate = 0.0078125
update = "per-step"
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def tiny_device_file(tmp_path: Path) -> Path:
    return write(tmp_path, "tiny.toml", TINY_DEVICE)


@pytest.fixture
def tiny_spec_file(tmp_path: Path) -> Path:
    return write(tmp_path, "tiny_spec.toml", TINY_SPEC)


def pytest_collection_modifyitems(session, config, items):
    """The bounds-checked kernel test runs last (test_core_boundscheck.run_last)."""
    from test_core_boundscheck import run_last

    run_last(items)


def pytest_collection_finish(session):
    """Start the bounds-checked kernel run (test_core_boundscheck) in the background as soon
    as the suite is collected: its compilation runs beside the other tests."""
    from test_core_boundscheck import start_if_selected

    start_if_selected(session)


#: ``NUMBA_DISABLE_JIT=1``: the kernels run as the Python functions they are defined as
UNCOMPILED = os.environ.get("NUMBA_DISABLE_JIT", "") == "1"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``uncompiled`` (the wide-format twins, whose 32-bit weight codes need an
    int64 specialisation of every kernel: two minutes of compiling on a cold cache) run
    only with the kernels uncompiled; tests/test_uncompiled.py runs them that way in a
    subprocess (the kernels' compiled and Python forms are tested bit-identical)."""
    if UNCOMPILED:
        return
    skip = pytest.mark.skip(reason="runs uncompiled in tests/test_uncompiled.py")
    for item in items:
        if "uncompiled" in item.keywords:
            item.add_marker(skip)
