"""The bad-input campaign: every way a user can get edgesnn wrong, through the CLI.

Each case runs a command as a user would and asserts the exit code, exactly
one line on stderr that names the file or option and the problem, no
traceback, and no output left behind (a refused run writes nothing; a
folder it made is removed). ``CASES`` is grouped by category; docs/campaign.md
lists the categories with their counts, and ``test_docs_table_counts_the_cases``
keeps the two in step.

Cases that need a real run share one tiny network (Yin-Yang, 8 hidden
neurons, 8 steps), so the whole module runs in well under three minutes.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import EXAMPLES, TINY_DEVICE
from edgesnn.cli import main

#: a small Yin-Yang network: fast enough to run in every case that needs a run
SMALL_SPEC = """
[network]
name = "small"
inputs = 4
time_steps = 8

[[layers]]
kind = "dense"
size = 8
beta = 0.9
threshold = 0.5

[[layers]]
kind = "readout"
size = 3
beta = 0.9
trace_decay = 0.9

[learning]
signal = "bp"
window = 4
learning_rate = 0.0078125
update = "per-sample"
"""

#: every placeable kind but the one a stored TESS basis (and DFA matrix) needs
NOT_FEEDBACK = ("weight", "bias", "membrane", "current", "spike", "trace", "signal", "update",
                "lut", "input", "rng")
RUN = ["--samples", "20", "--eval-every", "10", "--eval-samples", "10", "--quiet"]


# --------------------------------------------------------------------------
# the case table


@dataclass(frozen=True)
class Case:
    """One bad input: ``make(tmp) -> argv`` builds the files and the command line."""

    category: str
    name: str
    make: Callable[[Path], list[str]]
    message: str                  # regex that the one stderr line must match
    code: int = 2


def _w(tmp: Path, name: str, text: str | bytes) -> str:
    p = tmp / name
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(textwrap.dedent(text))
    return str(p)


def _spec(tmp: Path, old: str = "", new: str = "", name: str = "s.toml") -> str:
    text = SMALL_SPEC
    if old:
        assert old in text, old
        text = text.replace(old, new, 1)
    return _w(tmp, name, text)


def _dev(tmp: Path, old: str = "", new: str = "", name: str = "d.toml") -> str:
    text = textwrap.dedent(TINY_DEVICE)
    if old:
        assert old in text, old
        text = text.replace(old, new, 1)
    return _w(tmp, name, text)


def spec_case(name: str, old: str, new: str, message: str) -> Case:
    return Case("spec TOML", name,
                lambda t: ["profile", _spec(t, old, new), "--hw", "cortex-m7"], message)


def dev_case(name: str, old: str, new: str, message: str) -> Case:
    return Case("device TOML", name, lambda t: ["hw", "validate", _dev(t, old, new)], message)


def sim(tmp: Path, *args: str, spec: str | None = None) -> list[str]:
    return ["simulate", spec or _spec(tmp), *RUN, "--out", str(tmp / "out"), *args]


CASES: list[Case] = [
    # -- spec files: unreadable, malformed, wrong types, out of range, contradictions, names
    Case("spec TOML", "missing file", lambda t: ["profile", str(t / "none.toml")],
         r"none\.toml: no such file"),
    Case("spec TOML", "a folder", lambda t: ["profile", str(t)], r": is a directory"),
    Case("spec TOML", "binary", lambda t: ["profile", _w(t, "b.toml", b"\xff\xfe\x00\x81" * 64)],
         r"b\.toml: not UTF-8 text"),
    Case("spec TOML", "empty", lambda t: ["profile", _w(t, "e.toml", "")],
         r"e\.toml: key 'network': is required but missing"),
    Case("spec TOML", "malformed", lambda t: ["profile", _w(t, "m.toml", "[network\nname =")],
         r"m\.toml: malformed TOML"),
    Case("spec TOML", "truncated",
         lambda t: ["profile", _w(t, "t.toml", SMALL_SPEC[:SMALL_SPEC.index("[[layers]]\nkind = \"readout\"")])],
         r"t\.toml: key 'layers': needs at least one spiking layer and a readout"),
    spec_case("wrong type", "inputs = 4", 'inputs = "four"',
              r"key 'network.inputs': must be an integer in \[1, 1000000\], got 'four'"),
    spec_case("boolean for integer", "inputs = 4", "inputs = true",
              r"key 'network.inputs': must be an integer"),
    spec_case("NaN", "beta = 0.9\nthreshold", "beta = nan\nthreshold",
              r"key 'layers\[0\].beta': must be a finite number"),
    spec_case("Inf", "threshold = 0.5", "threshold = inf",
              r"key 'layers\[0\].threshold': must be a finite number"),
    spec_case("negative size", "size = 8", "size = -3",
              r"key 'layers\[0\].size': must be an integer in \[1, 1000000\], got -3"),
    spec_case("zero window", "window = 4", "window = 0", r"key 'learning.window'"),
    spec_case("window past T", "window = 4", "window = 99",
              r"key 'learning.window': must be <= network.time_steps \(8\), got 99"),
    spec_case("carry without per-sample", 'update = "per-sample"',
              'update = "per-step"\nresidual = "carry"',
              r"key 'learning.residual': \"carry\" needs update = \"per-sample\""),
    spec_case("zero learning rate", "learning_rate = 0.0078125", "learning_rate = 0",
              r"key 'learning.learning_rate': must be a number in \(0.0, 1.0\]"),
    spec_case("learning rate above 1", "learning_rate = 0.0078125", "learning_rate = 2",
              r"key 'learning.learning_rate'"),
    spec_case("unknown key", 'name = "small"', 'name = "small"\ncolour = "blue"',
              r"key 'network.colour': unknown key \(allowed here: "),
    spec_case("misspelt key", "size = 8", "sise = 8",
              r"key 'layers\[0\].size': is required but missing \(unknown key 'sise' here: a "
              r"misspelling of 'size'\?\)"),
    spec_case("unknown layer kind", 'kind = "dense"', 'kind = "lstm"',
              r"key 'layers\[0\].kind': must be one of dense, recurrent, readout; got 'lstm'"),
    spec_case("convolutional kind", 'kind = "dense"', 'kind = "conv"',
              r"'conv' \(convolutional layers\) is not supported yet; supported kinds: dense, "
              r"recurrent, readout$"),
    spec_case("TESS groups without TESS", "threshold = 0.5", "threshold = 0.5\ntess_groups = 4",
              r"key 'layers\[0\].tess_groups': only applies with learning.signal = \"tess\" "
              r"\(signal is \"bp\"\)$"),
    spec_case("LLIF neuron", "threshold = 0.5", 'threshold = 0.5\nneuron = "llif"',
              r"key 'layers\[0\].neuron': 'llif' \(LLIF neurons\) is not supported yet"),
    spec_case("no readout", 'kind = "readout"\nsize = 3\nbeta = 0.9\ntrace_decay = 0.9',
              'kind = "dense"\nsize = 3\nbeta = 0.9\nthreshold = 1.0',
              r"key 'layers\[1\].kind': the last layer must be kind = \"readout\""),
    spec_case("one class", "size = 3", "size = 1",
              r"key 'layers\[1\].size': a readout needs at least 2 classes"),
    Case("spec TOML", "misspelt table",
         lambda t: ["profile", _w(t, "z.toml", SMALL_SPEC.replace("[[layers]]", "[[layerz]]"))],
         r"key 'layers': is required but missing \(unknown key 'layerz' here: a misspelling of "
         r"'layers'\?\)"),
    Case("spec TOML", "layers not an array",
         lambda t: ["profile", _w(t, "n.toml", "layers = 3\n" + SMALL_SPEC[:SMALL_SPEC.index(
             "[[layers]]")])],
         r"key 'layers': must be an array of tables \(\[\[layers\]\]\), got 3"),
    spec_case("unknown surrogate", 'signal = "bp"', 'signal = "bp"\nsurrogate = "sigmoid"',
              r"key 'learning.surrogate': must be one of rational, triangle"),
    Case("spec TOML", "override into a scalar",
         lambda t: ["profile", _spec(t), "--set", "network.inputs.x=3"],
         r"override 'network.inputs.x=3': 'network.inputs' is not a table"),
    Case("spec TOML", "override of a missing layer",
         lambda t: ["profile", _spec(t), "--set", "layers.9.size=3"],
         r"override 'layers.9.size=3': 'layers' has 2 entries, '9' is not one of them"),

    # -- device files
    Case("device TOML", "missing file", lambda t: ["hw", "validate", str(t / "none.toml")],
         r"none\.toml: no such file"),
    Case("device TOML", "binary",
         lambda t: ["hw", "validate", _w(t, "b.toml", bytes(range(256)))],
         r"b\.toml: (not UTF-8 text|malformed TOML)"),
    Case("device TOML", "empty", lambda t: ["hw", "validate", _w(t, "e.toml", "")],
         r"e\.toml: key 'device': is required but missing"),
    Case("device TOML", "malformed", lambda t: ["hw", "validate", _w(t, "m.toml", "[device]\n=")],
         r"m\.toml: malformed TOML"),
    dev_case("too many bits", "weight   = { signed = true,  int_bits = 1, frac_bits = 6 }",
             "weight   = { signed = true,  int_bits = 20, frac_bits = 20 }",
             r"key 'formats.weight': total bits \(signed \+ int_bits \+ frac_bits\) must be in "
             r"1..32, got 41"),
    dev_case("zero bits", "weight   = { signed = true,  int_bits = 1, frac_bits = 6 }",
             "weight   = { signed = false,  int_bits = 0, frac_bits = 0 }",
             r"key 'formats.weight': total bits .* got 0"),
    dev_case("negative bank", "size_bytes = 4096", "size_bytes = -1",
             r"key 'banks\[0\].size_bytes': must be an integer >= 1, got -1"),
    dev_case("NaN clock", "clock_mhz = 100.0", "clock_mhz = nan",
             r"key 'device.clock_mhz': must be a finite number"),
    dev_case("zero clock", "clock_mhz = 100.0", "clock_mhz = 0.0",
             r"key 'device.clock_mhz': must be a number in \(0.0, 100000.0\]"),
    dev_case("unknown rounding", "frac_bits = 6 }", 'frac_bits = 6, rounding = "up" }',
             r"key 'formats.weight.rounding': must be one of floor, nearest-even, "
             r"nearest-away, stochastic"),
    dev_case("unknown key", 'name = "tiny"', 'name = "tiny"\nvoltage = 0.8',
             r"key 'device.voltage': unknown key"),
    dev_case("missing format", "weight   = { signed = true,  int_bits = 1, frac_bits = 6 }\n",
             "", r"key 'formats.weight': is required but missing"),
    dev_case("misspelt key", "word_bits = 64", "word_bit = 64",
             r"key 'banks\[0\].word_bits': is required but missing \(unknown key 'word_bit'"),
    dev_case("bank holds unknown kind", "write_pj = 12.0", 'write_pj = 12.0\nholds = ["ghosts"]',
             r"key 'banks\[0\].holds': unknown tensor kind 'ghosts'"),
    dev_case("unknown TESS basis", "[luts]", '[tess]\nbasis = "rom"\n\n[luts]',
             r"key 'tess.basis': must be one of generated, stored; got 'rom'"),
    Case("device TOML", "unknown preset", lambda t: ["profile", _spec(t), "--hw", "xylo"],
         r"unknown device 'xylo'; presets: "),

    # -- options
    Case("options", "negative seed", lambda t: sim(t, "--seed", "-1"),
         r"Invalid value for '--seed': -1 is not in the range 0<=x<=4294967295"),
    Case("options", "seed too large", lambda t: sim(t, "--seed", str(2 ** 32)),
         r"Invalid value for '--seed'"),
    Case("options", "zero samples", lambda t: sim(t, "--samples", "0"),
         r"Invalid value for '--samples': 0 is not in the range x>=1"),
    Case("options", "misspelt option", lambda t: sim(t, "--sampels", "3"),
         r"No such option '--sampels'.*'--samples'"),
    Case("options", "unknown data set", lambda t: sim(t, "--data", "mnist"),
         r"Invalid value for '--data': 'mnist' is not one of"),
    Case("options", "encoding of another data set", lambda t: sim(t, "--encoding", "iaf"),
         r"data set 'yinyang' takes --encoding regular or rate or latency, not 'iaf'"),
    Case("options", "trace sample outside the run", lambda t: sim(t, "--trace-sample", "50"),
         r"--trace-sample 50 is not among the samples this run learns \(0 to 19\)"),
    Case("options", "malformed --set", lambda t: sim(t, "--set", "nonsense"),
         r"override 'nonsense' must look like section.key=value"),
    Case("options", "event data without --data-dir", lambda t: sim(t, "--data", "shd"),
         r"data set 'shd' reads local files: give --data-dir"),
    Case("options", "--data-dir that does not exist",
         lambda t: sim(t, "--data", "fsdd", "--data-dir", str(t / "nowhere")),
         r"nowhere"),
    Case("options", "learning-rate schedule past the formats",
         lambda t: sim(t, "--samples", "45000", "--set", "learning.lr_halving_every=20"),
         r"--samples 45000 with learning.lr_halving_every = 20 halves the learning rate down "
         r"to 2\^-\d+; the fixed engine's formats allow at most 2\^-\d+ \(at most --samples "
         r"\d+\)"),
    Case("options", "unknown engine", lambda t: sim(t, "--engine", "gpu"),
         r"Invalid value for '--engine'"),

    # -- the spec against the data and the device
    Case("spec vs data", "inputs the data set does not give",   # and would not fit either:
         lambda t: sim(t, "--set", "network.inputs=700", "--set", "layers.0.size=2000"),
         r"data set 'yinyang' gives 4 inputs, spec 'small' expects network.inputs = 700$"),
    Case("spec vs data", "fewer classes than the data",
         lambda t: sim(t, "--set", "layers.1.size=2"),
         r"data set 'yinyang' has 3 classes .*the spec's readout has 2"),
    Case("spec vs data", "does not fit the device",
         lambda t: sim(t, "--set", "layers.0.size=4000"),
         r"does not fit cortex-m7"),
    Case("spec vs data", "float device for the fixed engine",
         lambda t: sim(t, "--hw", "fp32-reference", "--engine", "fixed"),
         r"float device"),
    Case("spec vs data", "TESS basis stored where no bank holds it",
         lambda t: sim(t, "--hw", _dev(t, "write_pj = 12.0", 'write_pj = 12.0\nholds = ['
                                       + ", ".join(f'"{k}"' for k in NOT_FEEDBACK)
                                       + ']\n\n[tess]\nbasis = "stored"'),
                       spec=_spec(t, 'signal = "bp"', 'signal = "tess"')),
         r"does not fit tiny: no bank may hold 'feedback' tensors \(L0.basis\); add it to a "
         r"bank's holds list$"),

    # -- checkpoints
    Case("checkpoints", "random bytes",
         lambda t: sim(t, "--resume", _w(t, "r.npz", os.urandom(300))),
         r"r\.npz: not an edgesnn checkpoint \(not an \.npz archive"),
    Case("checkpoints", "empty file", lambda t: sim(t, "--resume", _w(t, "e.npz", b"")),
         r"e\.npz: not an edgesnn checkpoint"),
    Case("checkpoints", "missing file", lambda t: sim(t, "--resume", str(t / "none.npz")),
         r"none\.npz: no such checkpoint"),
    Case("checkpoints", "truncated", lambda t: sim(t, "--resume", _checkpoint(t, "truncated")),
         r"c\.npz: damaged or truncated checkpoint"),
    Case("checkpoints", "foreign npz", lambda t: sim(t, "--resume", _checkpoint(t, "foreign")),
         r"c\.npz: an \.npz archive but not an edgesnn checkpoint"),
    Case("checkpoints", "damaged state", lambda t: sim(t, "--resume", _checkpoint(t, "json")),
         r"c\.npz: damaged checkpoint state"),
    Case("checkpoints", "another device",
         lambda t: sim(t, "--resume", _checkpoint(t), "--hw", "audio-edge"),
         r"c\.npz: written for another device: device.name is 'cortex-m7' there, "
         r"'audio-edge' here"),
    Case("checkpoints", "another spec",
         lambda t: sim(t, "--resume", _checkpoint(t), "--set", "layers.0.size=9"),
         r"c\.npz: written for another network spec: spec.layers.0.size is 8 there, 9 here"),
    Case("checkpoints", "another seed",
         lambda t: sim(t, "--resume", _checkpoint(t), "--seed", "3"),
         r"c\.npz: written for another seed, encoding or evaluation: config.seed is 0 there, "
         r"3 here"),
    Case("checkpoints", "other engines",
         lambda t: sim(t, "--resume", _checkpoint(t), "--engine", "float"),
         r"c\.npz: written for another engines: engines"),
    Case("checkpoints", "another data encoding",
         lambda t: sim(t, "--resume", _checkpoint(t), "--encoding", "rate"),
         r"config.encoding is 'regular' there, 'rate' here"),
    Case("checkpoints", "older format", lambda t: sim(t, "--resume", _checkpoint(t, "v2")),
         r"c\.npz: checkpoint format 2; this edgesnn reads format 3"),
    Case("checkpoints", "missing array", lambda t: sim(t, "--resume", _checkpoint(t, "drop")),
         r"c\.npz: checkpoint array L0\.W: expected a float array of shape \(8, 4\), got "
         r"missing"),
    Case("checkpoints", "weight code outside its format",
         lambda t: sim(t, "--resume", _checkpoint(t, "code")),
         r"c\.npz: checkpoint array L0\.W: codes -?\d+\.\.1000 outside the weight format Q1\.6 "
         r"\(s8, .*\): -128\.\.127$"),
    Case("checkpoints", "a zero rounding lane", lambda t: sim(t, "--resume", _checkpoint(t, "lane")),
         r"c\.npz: checkpoint array rng: lane 0 is 0: a lane is a nonzero 32-bit state"),
    Case("checkpoints", "NaN weight", lambda t: sim(t, "--resume", _checkpoint(t, "nan")),
         r"c\.npz: checkpoint array out\.W: holds NaN or Inf"),
    Case("checkpoints", "past --samples",
         lambda t: sim(t, "--resume", _checkpoint(t), "--samples", "10"),
         r"c\.npz: already at sample 20, past --samples 10"),
    Case("checkpoints", "a folder", lambda t: sim(t, "--resume", str(t)),
         r"Invalid value for '--resume'.*is a directory"),

    # -- data files in their original formats, damaged
    Case("data files", "WAV that is not a WAV",
         lambda t: sim(t, *_fsdd(t, "garbage"), spec=_fsdd_spec(t)),
         r"FSDD: .*0_george_0\.wav is not a readable WAV file"),
    Case("data files", "stereo WAV", lambda t: sim(t, *_fsdd(t, "stereo"), spec=_fsdd_spec(t)),
         r"FSDD: .*0_george_0\.wav is not mono 16-bit PCM \(2 channels, 16 bit\)"),
    Case("data files", "8-bit WAV", lambda t: sim(t, *_fsdd(t, "8bit"), spec=_fsdd_spec(t)),
         r"FSDD: .*0_george_0\.wav is not mono 16-bit PCM \(1 channel, 8 bit\)"),
    Case("data files", "WAV at another rate",
         lambda t: sim(t, *_fsdd(t, "rate"), spec=_fsdd_spec(t)),
         r"FSDD: .*0_george_0\.wav is sampled at 16000 Hz, the encoder expects 8000 Hz"),
    Case("data files", "empty WAV folder", lambda t: sim(t, *_fsdd(t, "empty"), spec=_fsdd_spec(t)),
         r"FSDD: no files named DIGIT_SPEAKER_INDEX\.wav in"),
    Case("data files", "truncated WAV", lambda t: sim(t, *_fsdd(t, "truncated"), spec=_fsdd_spec(t)),
         r"FSDD: .*0_george_0\.wav is not a readable WAV file"),
    Case("data files", "HDF5 that is not HDF5", lambda t: sim(t, *_shd(t, "garbage")),
         r"shd_train\.h5"),
    Case("data files", "HDF5 with NaN spike times", lambda t: sim(t, *_shd(t, "nan")),
         r"shd_train\.h5.*(NaN|finite)"),
    Case("data files", "DVS Gesture events with NaN", lambda t: sim(t, *_gesture(t)),
         r"DVS Gesture: .*user01_fluorescent/0\.npy: non-finite values"),
    Case("data files", "N-MNIST truncated event file", lambda t: sim(t, *_nmnist(t)),
         r"N-MNIST: .*\.bin: 7 bytes is not a whole number of 5-byte events"),

    # -- outputs
    Case("outputs", "--out is a file", lambda t: sim(t, "--out", _w(t, "f", "x")),
         r"f: --out must be a folder, and this is a file"),
    Case("outputs", "--out inside a file", lambda t: sim(t, "--out", _w(t, "f", "x") + "/sub"),
         r"f/sub: cannot write there \(Not a directory\)"),
    Case("outputs", "--out where nothing can be written",
         lambda t: sim(t, "--out", "/proc/edgesnn-campaign"),
         r"/proc/edgesnn-campaign: cannot write there"),
    Case("outputs", "--out holds another run's results",
         lambda t: sim(t, "--out", _other_run(t)),
         r"other: holds another run's results \(report\.json, trace\.npz\); give --overwrite"),
    Case("outputs", "--out locked by a running run",
         lambda t: sim(t, "--out", _locked(t)),
         r"locked: another edgesnn run \(pid \d+\) is writing there"),
    Case("outputs", "profile --out is a folder",
         lambda t: ["profile", _spec(t), "--out", str(t)], r"Invalid value for '--out': .* is a "
                                                          r"directory"),
    Case("outputs", "profile --out where nothing can be written",
         lambda t: ["profile", _spec(t), "--out", "/proc/edgesnn-campaign.md"],
         r"/proc/edgesnn-campaign\.md: cannot write there"),
]


# --------------------------------------------------------------------------
# file makers for the cases


_CKPT_CACHE: dict[str, bytes] = {}


def _good_checkpoint_bytes() -> bytes:
    """A real checkpoint of the small spec at sample 20 (made once per test session)."""
    if "good" not in _CKPT_CACHE:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            t = Path(d)
            res = CliRunner().invoke(main, [*sim(t, "--checkpoint-every", "20")])
            assert res.exit_code == 0, res.output
            _CKPT_CACHE["good"] = (t / "out" / "checkpoint.npz").read_bytes()
    return _CKPT_CACHE["good"]


def _checkpoint(tmp: Path, damage: str = "") -> str:
    import io

    raw = _good_checkpoint_bytes()
    path = tmp / "c.npz"
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
        return str(path)
    if damage == "foreign":
        np.savez(path, weights=np.zeros(3))
        return str(path)
    with np.load(io.BytesIO(raw)) as z:
        arrays = {k: z[k] for k in z.files}
    state = json.loads(arrays["state_json"].tobytes().decode())
    if damage == "json":
        arrays["state_json"] = np.frombuffer(b"{not json", dtype=np.uint8)
    elif damage == "v2":
        state["meta"]["version"] = 2
    elif damage == "drop":
        del arrays["engine/float/L0.W"]
    elif damage == "code":
        arrays["engine/fixed/L0.W"] = arrays["engine/fixed/L0.W"].astype(np.int64)
        arrays["engine/fixed/L0.W"][0, 0] = 1000           # Q1.6 codes are -128..127
    elif damage == "lane":
        arrays["engine/fixed/rng"] = arrays["engine/fixed/rng"].copy()
        arrays["engine/fixed/rng"][0] = 0
    elif damage == "nan":
        arrays["engine/float/out.W"] = arrays["engine/float/out.W"].copy()
        arrays["engine/float/out.W"][0, 0] = np.nan
    if damage != "json":
        arrays["state_json"] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    return str(path)


def _fsdd_spec(tmp: Path) -> str:
    return _w(tmp, "fsdd.toml", SMALL_SPEC.replace("inputs = 4", "inputs = 4").replace(
        "size = 3", "size = 10"))


def _fsdd(tmp: Path, kind: str) -> list[str]:
    import wave

    root = tmp / "fsdd"
    root.mkdir(exist_ok=True)
    good = (np.sin(np.arange(4000) * 0.3) * 8000).astype("<i2")
    for name in ("1_george_7.wav", "2_george_9.wav"):
        with wave.open(str(root / name), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(good.tobytes())
    bad = root / "0_george_0.wav"
    if kind == "garbage":
        bad.write_bytes(b"RIFF but not really" * 10)
    elif kind == "truncated":
        with wave.open(str(bad), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(good.tobytes())
        bad.write_bytes(bad.read_bytes()[:30])
    elif kind == "8bit":
        with wave.open(str(bad), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(1)
            w.setframerate(8000)
            w.writeframes(bytes(4000))
    elif kind in ("stereo", "rate"):
        with wave.open(str(bad), "wb") as w:
            w.setnchannels(2 if kind == "stereo" else 1)
            w.setsampwidth(2)
            w.setframerate(16000 if kind == "rate" else 8000)
            w.writeframes(np.repeat(good, 2 if kind == "stereo" else 1).tobytes())
    elif kind == "empty":
        for p in root.iterdir():
            p.unlink()
    return ["--data", "fsdd", "--data-dir", str(root)]


def _shd(tmp: Path, kind: str) -> list[str]:
    from event_files import write_heidelberg

    root = tmp / "shd"
    root.mkdir(exist_ok=True)
    if kind == "garbage":
        (root / "shd_train.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(200))
        (root / "shd_test.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(200))
    else:
        samples = [([0.01, 0.02, float("nan")], [1, 2, 3])] * 4
        write_heidelberg(root / "shd_train.h5", samples, [0, 1, 2, 0])
        write_heidelberg(root / "shd_test.h5", samples, [0, 1, 2, 0])
    return ["--data", "shd", "--data-dir", str(root), "--set", "network.inputs=700",
            "--set", "layers.1.size=20"]


def _nmnist(tmp: Path) -> list[str]:
    from event_files import nmnist_dir

    root = tmp / "nmnist"
    nmnist_dir(root)
    victim = sorted(root.rglob("*.bin"))[0]
    raw = victim.read_bytes()
    victim.write_bytes(raw + raw[:2])       # two bytes of a second event: not whole events
    return ["--data", "nmnist", "--data-dir", str(root), "--set", "network.inputs=2312",
            "--set", "layers.1.size=10"]


def _gesture(tmp: Path) -> list[str]:
    from event_files import gesture_dir

    root = tmp / "dvs"
    gesture_dir(root)
    victim = root / "ibmGestureTrain" / "user01_fluorescent" / "0.npy"
    arr = np.load(victim)
    arr[0, 3] = np.nan
    np.save(victim, arr)
    return ["--data", "dvsgesture", "--data-dir", str(root), "--set", "network.inputs=2048",
            "--set", "layers.1.size=11"]


def _other_run(tmp: Path) -> str:
    d = tmp / "other"
    d.mkdir()
    (d / "report.json").write_text("{}")
    (d / "trace.npz").write_bytes(b"")
    return str(d)


_HELD: list[int] = []


def _locked(tmp: Path) -> str:
    d = tmp / "locked"
    d.mkdir()
    fd = os.open(d / ".edgesnn.lock", os.O_RDWR | os.O_CREAT)
    os.write(fd, b"4242\n")
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _HELD.append(fd)
    return str(d)


# --------------------------------------------------------------------------
# the campaign


def _listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[f"{c.category}: {c.name}" for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path):
    argv = case.make(tmp_path)
    before = _listing(tmp_path)
    try:
        res = CliRunner().invoke(main, argv)
    finally:
        while _HELD:
            os.close(_HELD.pop())
    assert res.exit_code == case.code, (res.exit_code, res.output, res.exception)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("edgesnn: error: "), lines
    assert re.search(case.message, lines[0]), (case.message, lines[0])
    assert "Traceback" not in res.output
    assert res.stdout == ""
    assert _listing(tmp_path) == before, "a refused command left files behind"


def test_names_of_cases_are_distinct():
    names = [(c.category, c.name) for c in CASES]
    assert len(set(names)) == len(names) >= 60


def test_docs_table_counts_the_cases():
    """docs/campaign.md lists every category with the number of its cases."""
    from collections import Counter

    doc = (Path(__file__).resolve().parents[1] / "docs" / "campaign.md").read_text()
    rows = dict(re.findall(r"^\| ([^|]+?) \| (\d+) \|", doc, flags=re.M))
    counted = Counter(c.category for c in CASES)
    counted.update(EXTRA_CASES)
    assert {k: int(v) for k, v in rows.items() if k != "total"} == dict(counted)
    assert int(rows["total"]) == sum(counted.values())


#: the cases of this module that are tests of their own (not rows of CASES), by category
EXTRA_CASES = {"outputs": 3, "signals": 3, "generated specs and devices": 2,
               "divergence": 2}


# --------------------------------------------------------------------------
# outputs that need a run


def test_overwrite_clears_the_earlier_run_and_files_follow_the_umask(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "trace.npz").write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    old = os.umask(0o027)
    try:
        res = CliRunner().invoke(main, sim(tmp_path, "--overwrite"))
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    assert not (out / "trace.npz").exists(), "a stale file of the earlier run was left"
    assert (out / "notes.txt").read_text() == "mine", "a file that is not a run's was touched"
    assert not (out / ".edgesnn.lock").exists()
    assert (out / "report.json").stat().st_mode & 0o777 == 0o640


def test_resume_into_its_own_folder_needs_no_overwrite(tmp_path):
    res = CliRunner().invoke(main, sim(tmp_path, "--checkpoint-every", "10"))
    assert res.exit_code == 0, res.output
    ck = tmp_path / "out" / "checkpoint.npz"
    res = CliRunner().invoke(main, [*sim(tmp_path, "--checkpoint-every", "10"), "--samples", "30",
                                    "--resume", str(ck)])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "out" / "report.json").read_text())["config"]["resumed_at"] == 20


def _edgesnn() -> list[str]:
    exe = Path(sys.executable).with_name("edgesnn")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "edgesnn.cli"]


def test_two_runs_on_one_out_folder(tmp_path):
    """The second run into a folder that a first run is writing is refused in one line."""
    spec = _spec(tmp_path)
    first = subprocess.Popen([*_edgesnn(), "simulate", spec, "--samples", "3000", "--eval-every",
                              "1000", "--eval-samples", "10", "--out", str(tmp_path / "out")],
                             stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):                 # wait until it holds the lock
            if (tmp_path / "out" / ".edgesnn.lock").exists():
                break
            time.sleep(0.05)
        res = CliRunner().invoke(main, sim(tmp_path))
        assert res.exit_code == 2
        assert re.fullmatch(r"edgesnn: error: .*out: another edgesnn run \(pid \d+\) is writing "
                            r"there; wait for it to finish or choose another --out",
                            res.stderr.strip()), res.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 143


# --------------------------------------------------------------------------
# signals: stop at a random point, resume, end bit-identical


def _run_cli(args: list[str], signal_after: tuple[int, float] | None = None):
    """Run edgesnn; optionally send ``signal`` ``delay`` s after its first progress line."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.Popen([*_edgesnn(), *args], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, env=env)
    lines = []
    if signal_after is not None:
        sig, delay = signal_after
        for line in p.stderr:
            lines.append(line)
            if "samples (" in line:
                break
        time.sleep(delay)
        p.send_signal(sig)
    out, err = p.communicate(timeout=300)
    return p.returncode, out, "".join(lines) + err


def _report(folder: Path) -> dict:
    r = json.loads((folder / "report.json").read_text())
    for k in ("wall_seconds", "compile_seconds", "config"):
        r.pop(k)
    return r


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    t = tmp_path_factory.mktemp("whole")
    spec = _spec(t)
    # the numpy float engine keeps the run long enough (about 2.6 s) for the signals below to
    # land mid-learning; with the numba twin all 1500 samples take under 1 s
    args = ["simulate", spec, "--samples", "1500", "--eval-every", "500", "--eval-samples", "50",
            "--checkpoint-every", "400", "--float-engine", "numpy"]
    code, _, err = _run_cli([*args, "--out", str(t / "out")])
    assert code == 0, err
    return args, _report(t / "out")


@pytest.mark.parametrize("sig,delay", [(signal.SIGINT, 0.3), (signal.SIGTERM, 0.7)],
                         ids=["SIGINT", "SIGTERM"])
def test_a_signal_writes_the_checkpoint_and_the_resume_is_bit_identical(
        uninterrupted, tmp_path, sig, delay):
    args, whole = uninterrupted
    out = tmp_path / "out"
    code, _, err = _run_cli([*args, "--out", str(out)], signal_after=(sig, delay))
    last = err.strip().splitlines()[-1]
    if code == 0:
        pytest.fail(f"the run ended before the signal arrived: {last}")
    assert code == 128 + sig, err
    m = re.fullmatch(rf"edgesnn: error: stopped by {signal.Signals(sig).name} after (\d+) learned "
                     r"samples; checkpoint written to (\S+); resume with: (.+)", last)
    assert m, last
    # on a fast machine the signal may come in the final evaluation, after the last sample
    assert 0 < int(m.group(1)) <= 1500 and Path(m.group(2)) == out / "checkpoint.npz"
    assert "Traceback" not in err and not (out / "report.json").exists()
    resume = m.group(3).split()
    assert resume[:2] == ["edgesnn", "simulate"] and resume[-2:] == ["--resume", m.group(2)]
    code, _, err = _run_cli(resume[1:])
    assert code == 0, err
    assert _report(out) == whole


def test_a_signal_without_checkpoints_says_nothing_was_saved(tmp_path):
    spec = _spec(tmp_path)
    code, _, err = _run_cli(["simulate", spec, "--samples", "3000", "--eval-every", "1000",
                             "--out", str(tmp_path / "out")], signal_after=(signal.SIGTERM, 0.2))
    assert code == 143, err
    assert err.strip().splitlines()[-1].endswith(
        "learned samples; nothing saved (--checkpoint-every N makes a run resumable)")


# --------------------------------------------------------------------------
# generated specs and devices: run a few samples or are refused cleanly


def _bits(lo: int, hi: int):
    """Mostly plausible widths, sometimes wild ones."""
    return st.one_of(st.integers(lo, hi), st.integers(-1, 34))


_formats = st.fixed_dictionaries({
    "signed": st.booleans(), "int_bits": _bits(0, 8), "frac_bits": _bits(2, 14),
    "rounding": st.sampled_from(["floor", "nearest-even", "nearest-away", "stochastic", "up"]),
    "overflow": st.sampled_from(["saturate", "wrap"])})


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == float("inf") else
                                     "-inf" if v == float("-inf") else repr(v))
    return str(v)


def _inline(d: dict) -> str:
    return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in d.items()) + " }"


@pytest.mark.uncompiled        # any weight width: compiled, an int64 kernel compile (~2 min)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(weight=_formats, membrane=_formats, trace=_formats, update=_formats,
       bank=st.one_of(st.integers(2048, 1 << 20), st.integers(-1, 4096)),
       word=st.sampled_from([0, 8, 16, 32, 64, 2000]),
       decay=st.sampled_from(["shift", "multiply", "divide"]))
def test_generated_devices_run_or_are_refused_cleanly(tmp_path_factory, weight, membrane, trace,
                                                      update, bank, word, decay):
    t = tmp_path_factory.mktemp("dev")
    text = textwrap.dedent(TINY_DEVICE)
    for kind, f in (("weight", weight), ("membrane", membrane), ("trace", trace),
                    ("update", update)):
        text = re.sub(rf"^{kind} +=.*$", f"{kind} = {_inline(f)}", text, flags=re.M)
    text = text.replace("size_bytes = 4096", f"size_bytes = {bank}").replace(
        "word_bits = 64", f"word_bits = {word}").replace('decay = "shift"', f'decay = "{decay}"')
    dev = _w(t, "gen.toml", text)
    res = CliRunner().invoke(main, ["simulate", _spec(t), "--hw", dev, "--engine", "fixed",
                                    "--samples", "3", "--eval-every", "3", "--eval-samples", "3",
                                    "--quiet", "--out", str(t / "out")])
    _assert_clean(res, t / "out")


_numbers = st.one_of(st.floats(0.01, 0.99), st.floats(allow_nan=True, allow_infinity=True),
                     st.integers(-5, 300))


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(size=st.one_of(st.integers(1, 12), st.integers(-2, 40)),
       T=st.one_of(st.integers(4, 12), st.integers(-1, 20)),
       window=st.one_of(st.integers(1, 4), st.integers(-1, 25)),
       beta=_numbers, threshold=_numbers, lr=_numbers, alpha=_numbers,
       kind=st.sampled_from(["dense", "recurrent", "readout", "conv", 3]),
       update=st.sampled_from(["per-step", "per-sample", "never"]),
       signal_=st.sampled_from(["bp", "dfa", "tess", ""]), halving=st.integers(-1, 50))
def test_generated_specs_run_or_are_refused_cleanly(tmp_path_factory, size, T, window, beta,
                                                    threshold, lr, alpha, kind, update, signal_,
                                                    halving):
    t = tmp_path_factory.mktemp("spec")
    text = f"""
    [network]
    inputs = 4
    time_steps = {T}
    [[layers]]
    kind = {_toml_value(kind)}
    size = {size}
    beta = {_toml_value(beta)}
    threshold = {_toml_value(threshold)}
    [[layers]]
    kind = "readout"
    size = 3
    beta = 0.9
    [learning]
    signal = {_toml_value(signal_)}
    window = {window}
    learning_rate = {_toml_value(lr)}
    alpha_post = {_toml_value(alpha)}
    update = {_toml_value(update)}
    lr_halving_every = {halving}
    """
    spec = _w(t, "gen.toml", text)
    res = CliRunner().invoke(main, ["simulate", spec, "--samples", "3", "--eval-every", "3",
                                    "--eval-samples", "3", "--quiet", "--out", str(t / "out")])
    _assert_clean(res, t / "out")


def _assert_clean(res, out: Path) -> None:
    """Ran (exit 0, a report) or refused (exit 2, one line, nothing written)."""
    assert res.exit_code in (0, 2), (res.exit_code, res.output, res.exception)
    assert "Traceback" not in res.output
    if res.exit_code == 0:
        assert (out / "report.json").exists()
    else:
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("edgesnn: error: "), lines
        assert not out.exists()


# --------------------------------------------------------------------------
# divergence: a NaN stops the run naming the tensor and the sample


def test_a_diverging_engine_stops_naming_tensor_and_sample_and_keeps_the_checkpoint(
        tmp_path, monkeypatch):
    from edgesnn.reference import FloatEngine

    real = FloatEngine.run_sample
    calls = {"n": 0}

    def poisoned(self, x, label=None, learn=True):
        r = real(self, x, label, learn)
        if learn:
            calls["n"] += 1
            if calls["n"] == 16:             # after the warm-up sample, training sample 14
                self.params.W[0][2, 1] = np.inf
        return r

    monkeypatch.setattr(FloatEngine, "run_sample", poisoned)
    res = CliRunner().invoke(main, sim(tmp_path, "--checkpoint-every", "10"))
    assert res.exit_code == 2, res.output
    line = res.stderr.strip()
    assert line == (f"edgesnn: error: the float engine diverged at training sample 14: L0.W "
                    f"holds NaN or Inf; the last good checkpoint, {tmp_path / 'out'}/"
                    "checkpoint.npz, is kept (sample 10); try a smaller learning_rate"), line
    z = np.load(tmp_path / "out" / "checkpoint.npz")
    assert json.loads(z["state_json"].tobytes())["k"] == 10
    assert np.isfinite(z["engine/float/L0.W"]).all()
    assert not (tmp_path / "out" / "report.json").exists()


def test_a_non_finite_loss_is_divergence_of_the_readout(tmp_path, monkeypatch):
    from edgesnn.reference import FloatEngine

    real = FloatEngine.run_sample

    def nan_loss(self, x, label=None, learn=True):
        return real(self, x, label, learn)._replace(loss=float("nan"))

    monkeypatch.setattr(FloatEngine, "run_sample", nan_loss)
    res = CliRunner().invoke(main, sim(tmp_path, "--engine", "float"))
    assert res.exit_code == 2
    assert re.fullmatch(r"edgesnn: error: the float engine diverged at training sample 0: out\.u "
                        r"\(the readout membrane: the sample's loss is not finite\) holds NaN or "
                        r"Inf; no checkpoint was written; try a smaller learning_rate",
                        res.stderr.strip()), res.stderr
