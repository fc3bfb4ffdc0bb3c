"""Golden-vector runner: shipped cases, independently generated cases, failure paths."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import golden_cases as gc
from conftest import GOLDEN as SHIPPED, GOLDEN_MISSING
from edgesnn.errors import DataError
from edgesnn.golden import Unsupported, parse_psi, run_case, run_golden

needs_shipped = pytest.mark.skipif(not SHIPPED.is_dir(), reason=GOLDEN_MISSING)


def _run(folder):
    lines: list[str] = []
    ok = run_golden(folder, echo=lines.append)
    return ok, lines


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """Cases from the independent loop generator: other sizes, factors, resets, PSI, DFA, conv."""
    f = tmp_path_factory.mktemp("generated")
    gc.dense_case(f, "lin_hard_T12")
    gc.dense_case(f, "lin_soft_null_factors", reset="soft", factors_null=True, factors=(0.3, 0.6, 0.8, 0.4),
                  seed=11, T=9, B=1, N_in=4, N_out=3, delay_ls=9)
    gc.dense_case(f, "rec_soft", rec=True, reset="soft", seed=5, T=14, B=2, N_in=10, N_out=6)
    gc.dense_case(f, "rec_hard_triangle", rec=True, psi="0.3*max(0,1-|d|)", seed=6)
    gc.readout_case(f, "readout_small")
    gc.net_case(f, "net_dfa", mode="DFA")
    gc.net_case(f, "net_bp_hard", mode="BP", reset="hard", seed=8)
    gc.conv_case(f, "conv_soft_pad1")
    gc.conv_case(f, "conv_hard_pad0", reset="hard", pad=0, k=2, HW=4, factors_null=False,
                 factors=(0.3, 0.7, 0.5, 0.9), seed=9)
    # TESS: 2-D pooling to a non-dividing grid, batch 2; 1-D pooling with overlapping groups
    # (10 -> 4) and other frequencies, batch 3; one channel pooled 7 -> 3, batch 1, a 2x1 basis
    gc.tess_case(f, "tess_pool2d_B2")
    gc.tess_case(f, "tess_pool1d_overlap_B3", act_shape=(10,), pool=4, C=3, B=3, shapes=((3, 4), (7, 33)),
                 fmin=20.0, fmax=300.0, seed=12)
    gc.tess_case(f, "tess_channels_B1", act_shape=(2, 7), pool=3, C=5, B=1, shapes=((5, 6), (2, 1)),
                 seed=13)
    return f


def _copy_case(src: Path, name: str, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for ext in (".json", ".npz"):
        shutil.copy(src / f"{name}{ext}", dst / f"{name}{ext}")
    return dst / f"{name}.json"


def _edit_npz(path: Path, **changes):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    for k, v in changes.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    np.savez(path, **arrays)


# ------------------------------------------------------------------ shipped cases

@needs_shipped
def test_shipped_cases_all_pass_tess_included():
    ok, lines = _run(SHIPPED)
    text = "\n".join(lines)
    names = sorted(p.stem for p in SHIPPED.glob("*.json") if p.name != "GLOSSARY.json")
    for name in names:
        assert any(line.strip().startswith(f"PASS  {name}:") for line in lines), text
    assert ok, text
    assert lines[-1] == f"golden: {len(names)}/{len(names)} cases passed"


@needs_shipped
def test_shipped_tess_case_tolerances():
    lines: list[str] = []
    assert run_case(SHIPPED / "tess_lsg_basis.json", echo=lines.append)
    rows = {line.split()[0]: line.split() for line in lines if "max|diff|" in line}
    assert {k for k in rows if k.startswith("B_")} == {f"B_C{C}_D{D}" for C, D in json.loads(
        (SHIPPED / "tess_lsg_basis.json").read_text())["shapes"]}
    for name, row in rows.items():
        want = {"B": "0", "s": "1e-06", "l": "0.0001"}[name[0]]
        assert row[row.index("tol") + 1] == want, row
        if name.startswith("B_"):
            assert float(row[2]) == 0.0
    assert {"lsg_loss", "lsg_grad"} <= set(rows)


@needs_shipped
def test_shipped_net_uses_rounded_signal_and_says_so():
    lines: list[str] = []
    assert run_case(SHIPPED / "net_shd_bp.json", echo=lines.append)
    text = "\n".join(lines)
    assert "recorded g_hidden_f32" in text
    assert any(line.split()[0] == "g_hidden" and "PASS" in line for line in lines[1:] if line.strip())


# ------------------------------------------------------------------ generated cases

def test_generated_cases_pass(generated):
    ok, lines = _run(generated)
    assert ok, "\n".join(lines)
    assert lines[-1] == "golden: 12/12 cases passed"
    text = "\n".join(lines)
    assert "reset=hard" in text and "feedback=DFA" in text and "[conv]" in text
    assert "adaptive_avg_pool2d to 2x3 -> D=18" in text and "adaptive_avg_pool1d to 4 -> D=4" in text
    assert "f=linspace(20,300,C)" in text


def test_generated_cases_have_spikes_and_signal(generated):
    for name in ("lin_hard_T12", "rec_soft", "net_dfa", "conv_soft_pad1"):
        with np.load(generated / f"{name}.npz") as z:
            s = z["s"]
            assert 0 < s.sum() < s.size, name


def test_generated_tess_gradient_is_not_trivial(generated):
    with np.load(generated / "tess_pool1d_overlap_B3.npz") as z:
        g, B = z["lsg_grad"], z["B_C3_D4"]
    assert np.all(B[:, 0] == 0) and np.all(np.abs(B[:, 1:]) == 0.25)   # sign(sin(0)) = 0
    # 10 -> 4 groups [0,3), [2,5), [5,8), [7,10): element 0 only gets group 0 (sign 0 column)
    assert np.all(g[:, :2] == 0) and np.abs(g[:, 2:]).min() > 0


def test_conv_psi_with_a_trailing_note_is_understood(generated, tmp_path):
    jp = _copy_case(generated, "conv_soft_pad1", tmp_path)
    cfg = json.loads(jp.read_text())
    cfg["PSI"] = "PSI(d)=0.3*max(0,1-|d|)  (Conv2dSTDP default)"
    jp.write_text(json.dumps(cfg))
    lines: list[str] = []
    assert run_case(jp, echo=lines.append), lines
    assert "PSI=0.3*max(0,1-|d|)" in lines[0]


def test_tess_b_is_exact_and_options_not_built_are_unsupported(generated, tmp_path):
    jp = _copy_case(generated, "tess_pool2d_B2", tmp_path)
    with np.load(jp.with_suffix(".npz")) as z:
        B = z["B_C3_D8"].copy()
    B[1, 3] = -B[1, 3]
    _edit_npz(jp.with_suffix(".npz"), B_C3_D8=B)
    lines: list[str] = []
    assert run_case(jp, echo=lines.append) is False
    assert [line.split()[0] for line in lines if line.endswith("FAIL")] == ["B_C3_D8"]
    for field, value, expect in (("waveform", "cosine", "UNSUPPORTED: TESS waveform 'cosine'"),
                                 ("loss", "MSEHW", "UNSUPPORTED: TESS loss 'MSEHW'"),
                                 ("temperature", 2.0, "UNSUPPORTED: TESS temperature")):
        jp2 = _copy_case(generated, "tess_pool1d_overlap_B3", tmp_path / field)
        cfg = json.loads(jp2.read_text())
        cfg[field] = value
        jp2.write_text(json.dumps(cfg))
        lines = []
        assert run_case(jp2, echo=lines.append) is False
        assert any(expect in line for line in lines), lines


@pytest.mark.parametrize("field,value,expect", [
    ("shapes", [[3, 0]], "field 'shapes' must list [C, D] pairs"),
    ("lsg_pool", [9, 9], "lsg_pool [9, 9] does not fit"),
    ("lsg_classes", 2, "'lsg_labels' must hold integer classes in 0..1"),
])
def test_tess_bad_fields_are_one_line_data_errors(generated, tmp_path, field, value, expect):
    jp = _copy_case(generated, "tess_pool2d_B2", tmp_path)
    cfg = json.loads(jp.read_text())
    cfg[field] = value
    jp.write_text(json.dumps(cfg))
    with np.load(jp.with_suffix(".npz")) as z:
        labels = z["lsg_labels"].copy()
    labels[0] = 3
    _edit_npz(jp.with_suffix(".npz"), lsg_labels=labels)
    lines: list[str] = []
    assert run_case(jp, echo=lines.append) is False
    assert expect in _data_error_line(lines)


# ------------------------------------------------------------------ failure paths

def test_perturbed_value_fails(generated, tmp_path):
    jp = _copy_case(generated, "rec_soft", tmp_path)
    with np.load(jp.with_suffix(".npz")) as z:
        dW = z["dWrec_eff"].copy()
    dW[1, 2] += 1e-8
    _edit_npz(jp.with_suffix(".npz"), dWrec_eff=dW)
    lines: list[str] = []
    assert run_case(jp, echo=lines.append) is False
    arrays = [line.split() for line in lines[1:] if "max|diff|" in line]
    # a rec case compares 22 arrays; only the perturbed one fails, its steps still pass
    assert len(arrays) == 22
    assert [a[0] for a in arrays if a[-1] == "FAIL"] == ["dWrec_eff"]
    assert "dWrec_eff_steps" in [a[0] for a in arrays if a[-1] == "PASS"]
    assert lines[-1].strip() == "FAIL  rec_soft: 21/22 arrays within tolerance"


def test_unknown_kind_is_unsupported_and_fails(generated, tmp_path):
    jp = _copy_case(generated, "readout_small", tmp_path)
    cfg = json.loads(jp.read_text())
    cfg["kind"] = "spiking_transformer"
    jp.write_text(json.dumps(cfg))
    _copy_case(generated, "lin_hard_T12", tmp_path)
    ok, lines = _run(tmp_path)
    assert not ok
    text = "\n".join(lines)
    assert "UNSUPPORTED: kind 'spiking_transformer'" in text
    assert "PASS  lin_hard_T12" in text
    assert "FAILED: readout_small" in lines[-1]


@pytest.mark.parametrize("field,value,expect", [
    ("PSI", "PSI(d)=exp(-d^2)", "UNSUPPORTED: PSI"),
    ("reset", "zero", "UNSUPPORTED: reset 'zero'"),
    ("feedback_mode", "DRTP", "UNSUPPORTED: feedback_mode 'DRTP'"),
])
def test_unknown_options_are_unsupported(generated, tmp_path, field, value, expect):
    jp = _copy_case(generated, "net_dfa", tmp_path)
    cfg = json.loads(jp.read_text())
    cfg[field] = value
    jp.write_text(json.dumps(cfg))
    lines: list[str] = []
    assert run_case(jp, echo=lines.append) is False
    assert any(expect in line for line in lines), lines


def test_conv_stride_is_unsupported(generated, tmp_path):
    jp = _copy_case(generated, "conv_soft_pad1", tmp_path)
    cfg = json.loads(jp.read_text())
    cfg["conv"] = "F.conv2d, stride 2, zero padding"
    jp.write_text(json.dumps(cfg))
    lines: list[str] = []
    assert run_case(jp, echo=lines.append) is False
    assert any("UNSUPPORTED: conv stride 2" in line for line in lines), lines


def _data_error_line(lines):
    errs = [line.strip() for line in lines if "DataError:" in line]
    assert len(errs) == 1, lines
    return errs[0]


def test_missing_array_one_line_and_others_still_run(generated, tmp_path):
    jp = _copy_case(generated, "lin_hard_T12", tmp_path)
    _copy_case(generated, "readout_small", tmp_path)
    _edit_npz(jp.with_suffix(".npz"), g=None)
    ok, lines = _run(tmp_path)
    assert not ok
    err = _data_error_line(lines)
    assert "lin_hard_T12.npz" in err and "'g'" in err and "missing" in err
    assert "PASS  readout_small" in "\n".join(lines)


def test_nan_in_input(generated, tmp_path):
    jp = _copy_case(generated, "conv_soft_pad1", tmp_path)
    with np.load(jp.with_suffix(".npz")) as z:
        x = z["x"].copy()
    x[0, 0, 0, 0, 0] = np.nan
    _edit_npz(jp.with_suffix(".npz"), x=x)
    lines: list[str] = []
    assert run_case(jp, echo=lines.append) is False
    err = _data_error_line(lines)
    assert "conv_soft_pad1.npz" in err and "'x'" in err and "NaN" in err


def test_shape_disagreeing_with_json(generated, tmp_path):
    jp = _copy_case(generated, "rec_soft", tmp_path)
    with np.load(jp.with_suffix(".npz")) as z:
        b = z["b"]
    _edit_npz(jp.with_suffix(".npz"), b=np.concatenate([b, [0.0]]))
    lines: list[str] = []
    assert run_case(jp, echo=lines.append) is False
    err = _data_error_line(lines)
    assert "rec_soft.npz" in err and "'b'" in err and "rec_soft.json" in err and "shape" in err


def test_sizes_disagreeing_with_inputs(generated, tmp_path):
    jp = _copy_case(generated, "readout_small", tmp_path)
    cfg = json.loads(jp.read_text())
    cfg["N_in"] += 1
    jp.write_text(json.dumps(cfg))
    lines: list[str] = []
    assert run_case(jp, echo=lines.append) is False
    err = _data_error_line(lines)
    assert "readout_small.npz" in err and "'x'" in err and "expected" in err


def test_missing_npz(generated, tmp_path):
    jp = _copy_case(generated, "readout_small", tmp_path)
    jp.with_suffix(".npz").unlink()
    lines: list[str] = []
    assert run_case(jp, echo=lines.append) is False
    assert "readout_small.npz" in _data_error_line(lines)


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(DataError, match="not found"):
        run_golden(tmp_path / "nope", echo=lambda s: None)
    (tmp_path / "GLOSSARY.json").write_text("{}")
    with pytest.raises(DataError, match="no golden cases"):
        run_golden(tmp_path, echo=lambda s: None)


@pytest.mark.parametrize("text,expect", [
    ("PSI(d)=1/(100*|d|+1)^2", ("rational", 100.0)),
    ("1 / (100 * abs(d) + 1) ** 2", ("rational", 100.0)),
    ("psi(u)=1/(1+50.0*|u|)^2", ("rational", 50.0)),
    ("0.3*max(0,1-|d|)", ("triangle", 0.3)),
    ("PSI(d) = 0.3 * max(0.0, 1.0 - |d|)", ("triangle", 0.3)),
    ("max(1-|x|,0)*0.5", ("triangle", 0.5)),
    ("PSI(d)=0.3*max(0,1-|d|)  (Conv2dSTDP default)", ("triangle", 0.3)),
    ("PSI(d)=1/(100*|d|+1)^2 (default of the dense (and recurrent) layers)", ("rational", 100.0)),
    ("0.3*max(0,1-|d|) # triangle", ("triangle", 0.3)),
    ("0.3*max(0,1-|d|)#triangle", ("triangle", 0.3)),
    ("1/(1+100*abs(x))**2; rational", ("rational", 100.0)),
    ("0.3*max(0,1-|d|) -- from Conv2dSTDP", ("triangle", 0.3)),
    ("1/(100*|d|+1)^2 (S-TLLR) # two notes", ("rational", 100.0)),
])
def test_parse_psi_tolerant(text, expect):
    assert parse_psi(text) == expect


@pytest.mark.parametrize("text", [
    "0.3*max(0,1-|d|) garbage",
    "0.3*max(0,1-|d|)(note without a space)",
    "0.3*max(0,1-|d|)--dashes without a space",
    "(a note first) 0.3*max(0,1-|d|)",
    "exp(-d^2) (Gaussian)",
    "# only a note",
    "0.3*max(0,1-|d|) (unbalanced",
])
def test_parse_psi_refuses_garbage_around_a_formula(text):
    with pytest.raises(Unsupported):
        parse_psi(text)
