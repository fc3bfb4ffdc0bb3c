"""``tomlwrite.dumps`` reads back as the data it wrote: every preset, and generated data."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgesnn.hw import _preset_path, parse_device, preset_names
from edgesnn.tomlwrite import dumps


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_round_trips(name):
    data = tomllib.loads(_preset_path(name).read_text())
    text = dumps(data, header=f"from {name}.toml\nsecond line")
    assert text.startswith(f"# from {name}.toml\n# second line\n")
    assert tomllib.loads(text) == data
    assert parse_device(tomllib.loads(text)) == parse_device(data)
    assert "weight = { " in text          # formats inline, one line each, as people write them


keys = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=6)
scalars = (st.booleans() | st.integers(-2 ** 63, 2 ** 63 - 1)
           | st.floats(allow_nan=False) | st.text(st.characters(codec="utf-8",
                                                                exclude_categories=("Cs",))))
tables = st.recursive(
    st.dictionaries(keys, scalars | st.lists(scalars, max_size=3), max_size=4),
    lambda inner: st.dictionaries(keys, inner | st.lists(inner, min_size=1, max_size=2)
                                  | scalars, max_size=4),
    max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(tables)
def test_generated_tables_round_trip(data):
    assert tomllib.loads(dumps(data)) == data


def test_what_toml_cannot_hold_is_refused():
    with pytest.raises(TypeError, match="cannot write"):
        dumps({"a": None})
