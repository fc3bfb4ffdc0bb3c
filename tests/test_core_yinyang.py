"""The fixed engine learns Yin-Yang online with the cortex-m7 preset's formats.

A loose bound (chance is 1/3): the measured comparison with the float engine
(within a few points after 3000 samples) is in docs/fixed_point.md.
"""

from __future__ import annotations

import math

from edgesnn.core import FixedEngine
from edgesnn.datasets import load_dataset
from edgesnn.hw import load_device
from edgesnn.plan import make_plan
from edgesnn.reference import init_params
from edgesnn.spec import load_spec
from edgesnn.train import Trainer, TrainConfig, evaluate
from conftest import EXAMPLES


def test_fixed_engine_learns_yinyang_on_cortex_m7():
    spec = load_spec(EXAMPLES / "yinyang.toml")
    train, validation, test = load_dataset("yinyang")
    eng = FixedEngine(make_plan(spec, load_device("cortex-m7")), init_params(spec, 0), 0)
    untrained, _ = evaluate(eng, test, spec, "regular", limit=300)
    cfg = TrainConfig(samples=1500, eval_every=1500, eval_samples=100, seed=0)
    Trainer(spec, {"fixed": eng}, train, validation, cfg).run()
    acc, loss = evaluate(eng, test, spec, "regular", limit=300)
    assert acc > 0.6, (untrained, acc)
    assert acc > untrained + 0.15
    assert math.isfinite(loss)                # computed from the dequantised readout
    assert sum(eng.last_counters.sram_reads.values()) > 0
