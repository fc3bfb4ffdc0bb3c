"""Event data sets (SHD, SSC, N-MNIST, DVS Gesture) from miniature files in the original formats."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import event_files as ef  # noqa: E402

from edgesnn.datasets import dvsgesture, nmnist, shd  # noqa: E402
from edgesnn.datasets.events import (Binning, EventSplit, SpikeCache, carve,  # noqa: E402
                                     event_format, load_events)
from edgesnn.errors import DataError  # noqa: E402


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any tonic download during these tests is a failure: data are read from local files."""
    import tonic.dataset
    import tonic.download_utils

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(tonic.dataset.Dataset, "download", refuse)
    monkeypatch.setattr(tonic.download_utils, "download_url", refuse)


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def tonic_dataset(cls, monkeypatch, **kwargs):
    """tonic's own dataset class on our files: its 'archive present?' check is bypassed."""
    monkeypatch.setattr(cls, "_check_exists", lambda self: True)
    return cls(**kwargs)


# -- formats agree with tonic's classes ----------------------------------------

def test_formats_match_tonic_classes():
    import tonic.datasets as td

    assert shd.SENSOR_SIZE == td.SHD.sensor_size == td.SSC.sensor_size
    assert shd.DTYPE == td.SHD.dtype
    assert [shd.SHD_FILES[s] + ".zip" for s in ("train", "test")] == \
        [td.SHD.train_zip, td.SHD.test_zip]
    assert [shd.SSC_FILES[s] + ".zip" for s in ("train", "validation", "test")] == \
        [td.SSC.train_zip, td.SSC.valid_zip, td.SSC.test_zip]
    assert nmnist.SENSOR_SIZE == td.NMNIST.sensor_size and nmnist.DTYPE == td.NMNIST.dtype
    assert nmnist.FOLDERS == {"train": td.NMNIST.train_folder, "test": td.NMNIST.test_folder}
    assert nmnist.ZIPS["train"][0] == td.NMNIST.train_filename
    assert dvsgesture.SENSOR_SIZE == td.DVSGesture.sensor_size
    assert dvsgesture.DTYPE == td.DVSGesture.dtype
    assert dvsgesture.FORMAT.classes == len(td.DVSGesture.classes)
    assert [dvsgesture.FOLDERS[s] + ".tar.gz" for s in ("train", "test")] == \
        [td.DVSGesture.train_filename, td.DVSGesture.test_filename]
    assert {n: event_format(n).channels for n in ("shd", "ssc", "nmnist", "dvsgesture")} == \
        {"shd": 700, "ssc": 700, "nmnist": 2 * 34 * 34, "dvsgesture": 2 * 32 * 32}


# -- SHD / SSC ----------------------------------------------------------------

def test_shd_spikes_land_in_their_bins_and_channels(tmp_path):
    truth = ef.shd_dir(tmp_path)
    train, val, test = load_events("shd", tmp_path, 10)
    assert (len(train), len(val), len(test)) == (9, 1, 3)
    assert train.n_inputs == 700 and train.encodings == ("events",)
    # sample 0: 0.5 s unit 123 twice (clipped to one spike), 0.0625 s unit 7, 1.5 s dropped
    i = int(np.flatnonzero(train.index == 0)[0])
    x = train.spikes(i, 10, "events")
    assert x.shape == (10, 700) and x.dtype == np.uint8
    assert np.argwhere(x).tolist() == [[0, 7], [3, 123]]      # 1400 ms / 10 = 140 ms bins
    assert train.labels[i] == 3
    assert list(test.labels) == truth["test_labels"]
    assert test.spikes(0)[1, 42] == 1 and test.spikes(0).sum() == 1    # 0.25 s -> bin 1
    assert test.spikes(2).sum() == 0                                   # a sample with no spikes
    # a shorter window: 0.0625 s in 10 ms bins -> bin 6; 0.5 s is past 100 ms
    short, _, _ = load_events("shd", tmp_path, 10, duration_ms=100)
    assert np.argwhere(short.spikes(i)).tolist() == [[6, 7]]


def test_shd_labels_and_carved_validation(tmp_path):
    truth = ef.shd_dir(tmp_path)
    train, val, _ = load_events("shd", tmp_path, 4)
    tr, va = carve(10, 0.1, 0)
    assert np.array_equal(train.index, tr) and np.array_equal(val.index, va)
    assert sorted(np.concatenate([train.index, val.index]).tolist()) == list(range(10))
    assert list(train.labels) == [truth["train_labels"][j] for j in train.index]
    assert list(val.labels) == [truth["train_labels"][j] for j in val.index]
    again, val2, _ = load_events("shd", tmp_path, 4)
    assert np.array_equal(val2.index, val.index)                     # seeded: same every run
    _, other, _ = load_events("shd", tmp_path, 4, seed=5)
    assert other.index.tolist() == carve(10, 0.1, 5)[1].tolist()


def test_shd_events_agree_with_tonic_reader(tmp_path, monkeypatch):
    import tonic.datasets as td

    ef.shd_dir(tmp_path / "SHD")                 # tonic's save_to layout: <dir>/SHD/*.h5
    train, _, test = load_events("shd", tmp_path, 10)
    theirs = tonic_dataset(td.SHD, monkeypatch, save_to=str(tmp_path), train=False)
    assert len(theirs) == len(test)
    for j in range(len(test)):
        ev, label = theirs[j]
        assert label == test.labels[j]
        assert np.array_equal(ev, test.events(j))


def test_ssc_official_splits_and_label_range(tmp_path):
    ef.ssc_dir(tmp_path)
    train, val, test = load_events("ssc", tmp_path, 5)
    assert list(train.labels) == [0, 17, 34] and list(val.labels) == [33, 1]
    assert list(test.labels) == [2]
    assert np.argwhere(val.spikes(1)).tolist() == [[2, 50]]          # 0.5 s of 1 s in 5 steps
    ef.write_heidelberg(tmp_path / "ssc_test.h5", [([0.1], [1])], [35], n_classes=35)
    with pytest.raises(DataError) as e:
        load_events("ssc", tmp_path, 5)
    assert "ssc_test.h5" in one_line(e) and "label 35" in str(e.value)


# -- N-MNIST ------------------------------------------------------------------

def test_nmnist_bytes_decode_with_tonic_reader(tmp_path):
    from tonic.io import read_mnist_file

    for k, (_, events) in enumerate(ef.NMNIST_TRAIN + ef.NMNIST_TEST):
        path = tmp_path / f"{k}.bin"
        path.write_bytes(ef.nmnist_bytes(events))
        ev = read_mnist_file(str(path), dtype=nmnist.DTYPE)
        assert [tuple(int(v) for v in e) for e in ev] == [tuple(e) for e in events]
    # one event by hand: x=5, y=7, ON, t=1234 = 0x0004D2
    assert ef.nmnist_bytes([(5, 7, 1234, 1)]) == bytes([5, 7, 0x80, 0x04, 0xD2])


def test_nmnist_spikes_labels_and_tonic_dataset_agree(tmp_path, monkeypatch):
    import tonic.datasets as td

    ef.nmnist_dir(tmp_path / "NMNIST")           # tonic's save_to layout
    train, val, test = load_events("nmnist", tmp_path, 10)
    assert train.n_inputs == 2 * 34 * 34
    assert sorted(train.labels.tolist() + val.labels.tolist()) == \
        sorted(d for d, _ in ef.NMNIST_TRAIN)
    assert list(test.labels) == [2, 8]
    # file 0 (digit 0): (5, 7, ON, 1234 us) twice in bin 0; (33, 33, OFF, 100 ms) in bin 3
    src = train.source
    x = train.binning(src.events(0))
    assert np.argwhere(x).tolist() == [[0, 1 * 1156 + 7 * 34 + 5], [3, 33 * 34 + 33]]
    # the 8 s event of digit 7 is past the 320 ms window
    assert train.binning(src.events(src.labels.tolist().index(7))).sum() == 1
    # tonic's NMNIST class lists and reads the same files in the same order
    theirs = tonic_dataset(td.NMNIST, monkeypatch, save_to=str(tmp_path), train=True)
    assert len(theirs) == len(src) and list(theirs.targets) == src.labels.tolist()
    for j in range(len(src)):
        ev, label = theirs[j]
        assert label == src.labels[j] and np.array_equal(ev, src.events(j))


def test_nmnist_reads_the_zips_without_extracting(tmp_path):
    ef.nmnist_dir(tmp_path / "tree")
    ef.zip_nmnist(tmp_path / "tree", "Train", tmp_path / "train.zip")
    ef.zip_nmnist(tmp_path / "tree", "Test", tmp_path / "test.zip")
    zipped = load_events("nmnist", tmp_path, 8)
    folder = load_events("nmnist", tmp_path / "tree", 8)
    assert zipped[0].source.zipped and not folder[0].source.zipped
    for a, b in zip(zipped, folder):
        assert np.array_equal(a.labels, b.labels)
        for i in range(len(a)):
            assert np.array_equal(a.spikes(i), b.spikes(i))


# -- DVS Gesture --------------------------------------------------------------

def test_dvsgesture_downsampled_spikes_and_labels(tmp_path):
    ef.gesture_dir(tmp_path)
    train, val, test = load_events("dvsgesture", tmp_path, 10, duration_ms=10)
    assert train.n_inputs == 2 * 32 * 32
    assert sorted(train.labels.tolist() + val.labels.tolist()) == [0, 5, 7, 10]
    assert list(test.labels) == [3]
    src = train.source
    assert src.names[0] == "user01_fluorescent/0.npy" and src.users.tolist() == [1, 1, 2, 3]
    # (100, 37, ON, 2.5 ms) -> pixel (25, 9) of 32x32, 1 ms bins -> bin 2; (0, 0, OFF, 0) -> bin 0
    x = train.binning(src.events(0))
    assert np.argwhere(x).tolist() == [[0, 0], [2, 1024 + 9 * 32 + 25]]
    # the default 6 s window: 5999.9 ms lands in the last of 10 bins
    full, _, _ = load_events("dvsgesture", tmp_path, 10)
    assert np.argwhere(full.binning(src.events(1))).tolist() == [[9, 31 * 32 + 31]]


def test_dvsgesture_events_agree_with_tonic_dataset(tmp_path, monkeypatch):
    import tonic.datasets as td

    ef.gesture_dir(tmp_path / "DVSGesture")
    train, _, _ = load_events("dvsgesture", tmp_path, 10)
    theirs = tonic_dataset(td.DVSGesture, monkeypatch, save_to=str(tmp_path), train=True)
    ours = {train.source.where(j): j for j in range(len(train.source))}
    assert len(theirs) == len(ours)
    for k, path in enumerate(theirs.data):           # tonic's order is the file system's
        ev, label = theirs[k]
        j = ours[str(Path(path))]
        assert label == train.source.labels[j]
        assert np.array_equal(ev, train.source.events(j))


# -- binning, splits, cache ----------------------------------------------------

def test_stretch_binning_is_tonic_n_time_bins(tmp_path):
    import tonic.transforms as tt

    ef.shd_dir(tmp_path)
    train, _, _ = load_events("shd", tmp_path, 10, stretch=True)
    ev = train.source.events(1)                 # 2 spikes, 0.01 s and 0.21 s
    ref = tt.ToFrame(sensor_size=(700, 1, 1), n_time_bins=10)(ev.copy()).reshape(10, -1)
    assert np.array_equal(train.binning(ev), np.minimum(ref, 1))
    assert train.binning(ev).sum() == 1          # tonic's n_time_bins drops the last event


def test_fixed_bins_are_whole_microseconds_and_edges_exact():
    fmt = event_format("shd")
    b = Binning(fmt, 3, 1_000_000)               # ceil(1e6 / 3) = 333334 us per step
    assert b.window_us == 333_334
    ev = np.zeros(4, dtype=shd.DTYPE)
    ev["t"] = [333_333, 333_334, 1_000_001, 1_000_002]
    ev["x"] = [0, 1, 2, 3]
    assert np.argwhere(b(ev)).tolist() == [[0, 0], [1, 1], [2, 2]]   # 3*333334 = 1000002 excluded


def test_split_sizes_take_seeded_subsets(tmp_path):
    ef.nmnist_dir(tmp_path)
    train, val, test = load_events("nmnist", tmp_path, 4, split_sizes=(5, None, 1))
    assert (len(train), len(val), len(test)) == (5, 1, 1)
    full, _, _ = load_events("nmnist", tmp_path, 4)
    assert set(train.index) <= set(full.index)
    again, _, _ = load_events("nmnist", tmp_path, 4, split_sizes=(5, None, 1))
    assert np.array_equal(again.index, train.index)
    with pytest.raises(DataError) as e:
        load_events("nmnist", tmp_path, 4, split_sizes=(50, None, None))
    assert "50 train samples" in one_line(e)


def test_cache_returns_equal_fresh_arrays_and_respects_its_bound(tmp_path):
    ef.shd_dir(tmp_path)
    train, _, _ = load_events("shd", tmp_path, 10)
    a = train.spikes(0)
    a[:] = 1                                       # the caller may scribble on its copy
    b = train.spikes(0)
    assert np.array_equal(b, train.binning(train.events(0))) and b.sum() < a.sum()
    assert train.cache.used == (10 * 700 + 7) // 8
    none, _, _ = load_events("shd", tmp_path, 10, cache_mb=0)
    none.spikes(0)
    assert none.cache.used == 0
    c = SpikeCache(10)
    c.put((0, 0), np.ones((4, 4), np.uint8))
    assert np.array_equal(c.get((0, 0), (4, 4)), np.ones((4, 4)))


def test_splits_pickle_without_open_files(tmp_path):
    ef.shd_dir(tmp_path)
    ef.nmnist_dir(tmp_path / "nm")
    ef.zip_nmnist(tmp_path / "nm", "Train", tmp_path / "train.zip")
    ef.zip_nmnist(tmp_path / "nm", "Test", tmp_path / "test.zip")
    for name in ("shd", "nmnist"):
        train, _, _ = load_events(name, tmp_path, 6)
        train.spikes(0)                             # opens the file
        copy = pickle.loads(pickle.dumps(train))
        assert isinstance(copy, EventSplit)
        assert np.array_equal(copy.spikes(1), train.spikes(1))


def test_wrong_T_or_encoding_is_a_data_error(tmp_path):
    ef.shd_dir(tmp_path)
    train, _, _ = load_events("shd", tmp_path, 10)
    with pytest.raises(DataError, match="binned to 10 steps"):
        train.spikes(0, 20, "events")
    with pytest.raises(DataError, match="encoding 'events'"):
        train.spikes(0, 10, "rate")
    for bad in (0, 2.5, True):
        with pytest.raises(DataError, match="T"):
            load_events("shd", tmp_path, bad)
    with pytest.raises(DataError, match="unknown event data set 'mnist'"):
        load_events("mnist", tmp_path, 10)


# -- missing and damaged files ----------------------------------------------------

def test_missing_files_say_which_and_where_to_put_them(tmp_path):
    cases = {"shd": ["shd_train.h5 not found", "shd_train.h5.gz", "zenkelab.org"],
             "ssc": ["ssc_train.h5 not found"],
             "nmnist": ["Train not found", "train.zip"],
             "dvsgesture": ["ibmGestureTrain not found", "ibmGestureTrain.tar.gz"]}
    for name, parts in cases.items():
        with pytest.raises(DataError) as e:
            load_events(name, tmp_path, 10)
        msg = one_line(e)
        assert str(tmp_path) in msg and all(p in msg for p in parts), msg
    # the train file there but not the test file
    ef.write_heidelberg(tmp_path / "shd_train.h5", [([0.1], [1])] * 3, [0, 1, 2])
    with pytest.raises(DataError) as e:
        load_events("shd", tmp_path, 10)
    assert f"{tmp_path / 'shd_test.h5'} not found" in one_line(e)
    # still compressed
    (tmp_path / "shd_test.h5.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(DataError) as e:
        load_events("shd", tmp_path, 10)
    assert "gunzip" in one_line(e)
    (tmp_path / "ibmGestureTrain.tar.gz").write_bytes(b"")
    with pytest.raises(DataError) as e:
        load_events("dvsgesture", tmp_path, 10)
    assert "tar xzf" in one_line(e)


@pytest.mark.parametrize("damage, expect", [
    (lambda p: p.write_bytes(b"this is not HDF5 at all" * 10), "not an HDF5 file"),
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: ef.write_heidelberg(p, [], []), "no samples"),
])
def test_damaged_shd_files(tmp_path, damage, expect):
    ef.shd_dir(tmp_path)
    damage(tmp_path / "shd_train.h5")
    with pytest.raises(DataError) as e:
        load_events("shd", tmp_path, 10)
    msg = one_line(e)
    assert "shd_train.h5" in msg and expect in msg


def test_shd_without_units_or_with_bad_units(tmp_path):
    import h5py

    ef.shd_dir(tmp_path)
    with h5py.File(tmp_path / "shd_test.h5", "a") as f:
        del f["spikes/units"]
    with pytest.raises(DataError) as e:
        load_events("shd", tmp_path, 10)
    assert "shd_test.h5" in one_line(e) and "spikes/units" in str(e.value)
    ef.write_heidelberg(tmp_path / "shd_test.h5", [([0.1], [700])], [1])
    _, _, test = load_events("shd", tmp_path, 10)
    with pytest.raises(DataError) as e:                 # found when the sample is read
        test.spikes(0)
    assert "shd_test.h5 sample 0" in one_line(e) and "unit = 700" in str(e.value)


def test_damaged_nmnist_files(tmp_path):
    ef.nmnist_dir(tmp_path)
    bad = tmp_path / "Train" / "3" / "00004.bin"
    bad.write_bytes(b"1234567")
    with pytest.raises(DataError) as e:
        load_events("nmnist", tmp_path, 10)
    assert str(bad) in one_line(e) and "5-byte" in str(e.value)
    bad.write_bytes(b"")
    with pytest.raises(DataError) as e:
        load_events("nmnist", tmp_path, 10)
    assert str(bad) in one_line(e) and "empty file" in str(e.value)
    bad.write_bytes(bytes([200, 7, 0, 0, 1]))           # x = 200 on a 34x34 sensor
    train, val, _ = load_events("nmnist", tmp_path, 10)
    split = train if bad.name in " ".join(train.where(i) for i in range(len(train))) else val
    i = next(i for i in range(len(split)) if split.where(i) == str(bad))
    with pytest.raises(DataError) as e:
        split.spikes(i)
    assert str(bad) in one_line(e) and "x = 200" in str(e.value)
    (tmp_path / "Train" / "x").mkdir()
    with pytest.raises(DataError, match="digit folders"):
        load_events("nmnist", tmp_path, 10)
    (tmp_path / "Train" / "x").rmdir()
    (tmp_path / "Train").rename(tmp_path / "Elsewhere")
    (tmp_path / "train.zip").write_bytes(b"PK not really")
    with pytest.raises(DataError) as e:
        load_events("nmnist", tmp_path, 10)
    assert "train.zip" in one_line(e) and "zip" in str(e.value)


def test_damaged_dvsgesture_files(tmp_path):
    ef.gesture_dir(tmp_path)
    ef.write_gesture(tmp_path, "ibmGestureTrain", 4, "led", 11, [(1, 1, 0, 1.0)])
    with pytest.raises(DataError) as e:
        load_events("dvsgesture", tmp_path, 10)
    assert "11.npy" in one_line(e) and "unknown label '11'" in str(e.value)
    (tmp_path / "ibmGestureTrain" / "user04_led" / "11.npy").unlink()
    bad = ef.write_gesture(tmp_path, "ibmGestureTest", 25, "led", 1, [])
    bad.write_bytes(b"garbage, not numpy")
    _, _, test = load_events("dvsgesture", tmp_path, 10)
    i = next(i for i in range(len(test)) if test.where(i) == str(bad))
    with pytest.raises(DataError) as e:
        test.spikes(i)
    assert str(bad) in one_line(e) and ".npy" in str(e.value)
    np.save(bad, np.zeros((3, 3)))
    with pytest.raises(DataError, match=r"\(n, 4\)"):
        test.spikes(i)
    np.save(bad, np.array([[128.0, 0, 1, 0]]))
    with pytest.raises(DataError, match="x = 128"):
        test.spikes(i)
    bad.write_bytes(b"")
    with pytest.raises(DataError) as e:
        load_events("dvsgesture", tmp_path, 10)
    assert str(bad) in one_line(e) and "empty file" in str(e.value)
