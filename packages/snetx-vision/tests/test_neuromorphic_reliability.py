"""Event datasets under damage and attack, in the real on-disk formats: damaged files
and out-of-range events are one-line errors naming the file, sample and field; the frame
cache serves only this user's private, finite, up-to-date entries; a read-only cache
works; a full disk says so."""

import multiprocessing
import os
import pickle
import subprocess

import numpy as np
import pytest

pytest.importorskip("tonic")
h5py = pytest.importorskip("h5py")
from fake_data import make_dvs_gesture, make_nmnist, make_shd, write_nmnist_bin  # noqa: E402
from snetx.dataset import DatasetCorruptError, neuromorphic  # noqa: E402
from snetx.train import main  # noqa: E402

LOAD = dict(download=False, num_workers=0)
ROOT_ONLY = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root (chown, mount)"
)


def _first_dvs(root, split="ibmGestureTrain"):
    return sorted((root / "DVSGesture" / split).rglob("*.npy"))[0]


def _ragged(rows, dtype):
    out = np.empty(len(rows), dtype=object)
    out[:] = [np.asarray(r, dtype=dtype) for r in rows]
    return out


def _write_shd(path, units, labels, unit_dtype=np.uint16, keys=("spikes/times", "spikes/units")):
    """An SHD file in its real layout (h5py): ragged times/units, labels, extra/."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        times = [np.linspace(0, 0.5, len(u)) for u in units]
        f.create_dataset(
            keys[0], data=_ragged(times, np.float16), dtype=h5py.vlen_dtype(np.float16)
        )
        f.create_dataset(
            keys[1], data=_ragged(units, unit_dtype), dtype=h5py.vlen_dtype(unit_dtype)
        )
        f.create_dataset("labels", data=np.array(labels, dtype=np.uint16))
        f.create_dataset("extra/keys", data=np.array([b"k%d" % j for j in range(20)]))
        f.create_dataset("extra/speaker", data=np.zeros(len(units), dtype=np.uint16))


def _shd(root, units_test=None, labels_test=None, **kw):
    make_shd(root)
    if units_test is not None:
        _write_shd(
            root / "SHD" / "shd_test.h5", units_test, labels_test or [0] * len(units_test), **kw
        )


# ---- 4. out-of-range events and labels -------------------------------------------------


def test_negative_dvs_coordinate_names_file_sample_and_field(tmp_path):
    make_dvs_gesture(tmp_path)
    path = _first_dvs(tmp_path)
    ev = np.load(path)
    ev[3, 0] = -5  # x
    np.save(path, ev)
    with pytest.raises(
        DatasetCorruptError, match=rf"{path.name}: sample 0: event 3 has x = -5, outside 0..127"
    ):
        neuromorphic.dvs_gesture_dataset(tmp_path, 2, 2, 4, **LOAD)


def test_dvs_y_out_of_range(tmp_path):
    make_dvs_gesture(tmp_path)
    path = _first_dvs(tmp_path)
    ev = np.load(path)
    ev[0, 1] = 128
    np.save(path, ev)
    with pytest.raises(DatasetCorruptError, match="event 0 has y = 128, outside 0..127"):
        neuromorphic.dvs_gesture_dataset(tmp_path, 2, 2, 4, **LOAD)


def test_polarities_other_than_0_1_or_minus_1_are_refused():
    """DVS Gesture and AEDAT4 store polarity as a bool; a reader with integer polarities
    goes through the same check."""
    ev = np.zeros(3, dtype=[("x", int), ("y", int), ("t", int), ("p", int)])
    neuromorphic.check_events(ev, (34, 34, 2), "f: sample 0")
    ev["p"] = [1, -1, 0]
    neuromorphic.check_events(ev, (34, 34, 2), "f: sample 0")
    ev["p"][2] = 3
    with pytest.raises(DatasetCorruptError, match="f: sample 0: event 2 has polarity 3"):
        neuromorphic.check_events(ev, (34, 34, 2), "f: sample 0")


def test_negative_or_too_large_shd_unit(tmp_path):
    _shd(tmp_path, units_test=[[1, 2, -1], [3]], unit_dtype=np.int16)
    with pytest.raises(
        DatasetCorruptError, match=r"shd_test.h5: sample 0: event 2 has unit = -1, outside 0..699"
    ):
        neuromorphic.shd_dataset(tmp_path, 2, 2, 4, **LOAD)
    _shd(tmp_path, units_test=[[1, 700], [3]])
    with pytest.raises(DatasetCorruptError, match=r"unit = 700, outside 0..699"):
        neuromorphic.shd_dataset(tmp_path, 2, 2, 4, **LOAD)


def test_labels_out_of_range_are_refused_before_any_frame_is_computed(tmp_path, monkeypatch):
    calls = []
    real = neuromorphic.integrate
    monkeypatch.setattr(neuromorphic, "integrate", lambda *a, **k: calls.append(1) or real(*a, **k))
    make_dvs_gesture(tmp_path)
    src = _first_dvs(tmp_path, "ibmGestureTest")
    os.rename(src, src.with_name("15.npy"))  # tonic reads the label from the file name
    with pytest.raises(
        DatasetCorruptError, match=r"15.npy: sample \d+ has label 15, outside 0..10"
    ):
        neuromorphic.dvs_gesture_dataset(tmp_path, 2, 2, 4, **LOAD)
    _shd(tmp_path / "shd", units_test=[[1], [2]], labels_test=[0, 25])
    with pytest.raises(
        DatasetCorruptError, match=r"shd_test.h5: sample 1 has label 25, outside 0..19"
    ):
        neuromorphic.shd_dataset(tmp_path / "shd", 2, 2, 4, **LOAD)
    assert calls == []  # both splits' labels are checked before the cache fill


# ---- 6. damaged files: snetx-train exits 2 with one line --------------------------------


def _damage(kind, root):
    """Write a small dataset, damage it as ``kind`` says; (argv, expected words)."""
    if kind.startswith("nmnist"):
        make_nmnist(root, per_split=(6, 3))
        path = sorted((root / "NMNIST" / "Train").rglob("*.bin"))[0]
        if kind == "nmnist truncated":
            path.write_bytes(path.read_bytes()[:-2])
            expected = "truncated"
        else:
            write_nmnist_bin(path, [40], [1], [5], [1])
            expected = "x = 40, outside 0..33"
        return ["--dataset", "nmnist", "--T", "2"], [path.name, expected]
    if kind.startswith("dvs"):
        make_dvs_gesture(root)
        path = _first_dvs(root)
        if kind == "dvs pickled":
            path.write_bytes(pickle.dumps(np.zeros((3, 4), dtype=object)))
            expected = "cannot be read"
        elif kind == "dvs truncated":
            path.write_bytes(path.read_bytes()[:100])
            expected = "cannot be read"
        else:
            os.rename(path, path.with_name("15.npy"))
            path, expected = path.with_name("15.npy"), "label 15, outside 0..10"
        return ["--dataset", "dvsgesture", "--T", "2", "--size", "16"], [path.name, expected]
    if kind.startswith("shd"):
        if kind == "shd keys":
            make_shd(root)
            _write_shd(root / "SHD" / "shd_train.h5", [[1], [2]], [0, 1], keys=("t", "u"))
            return ["--dataset", "shd", "--T", "2"], ["shd_train.h5", "cannot be read"]
        if kind == "shd unit 700":
            _shd(root, units_test=[[1, 700], [3]])
            return ["--dataset", "shd", "--T", "2"], ["shd_test.h5", "unit = 700"]
        _shd(root, units_test=[[1], [2]], labels_test=[0, 25])
        return ["--dataset", "shd", "--T", "2"], ["shd_test.h5", "label 25"]
    pytest.importorskip("dv_processing")
    from fake_data import make_cifar10_dvs

    if kind == "aedat garbage":
        base = make_cifar10_dvs(root, per_class=10, events=5)
        path = sorted(base.rglob("*.aedat4"))[0]
        path.write_bytes(b"#!AER-DAT4.0\r\n" + os.urandom(200))
        return ["--dataset", "cifar10dvs", "--T", "2", "--size", "16"], [
            path.name,
            "cannot be read",
        ]
    make_cifar10_dvs(root, per_class=1, events=5)
    return ["--dataset", "cifar10dvs", "--T", "2", "--size", "16"], ["too few samples"]


KINDS = [
    "nmnist truncated", "nmnist x=40", "dvs pickled", "dvs truncated", "dvs label 15",
    "shd keys", "shd unit 700", "shd label 25", "aedat garbage", "cifar10dvs one per class",
]  # fmt: skip
# each kind in the main process; one per format also in loader workers, whose errors
# reach the main process wrapped in a worker traceback
CASES = [(k, "0") for k in KINDS] + [
    (k, "2") for k in ("nmnist x=40", "dvs pickled", "shd unit 700")
]


@pytest.mark.parametrize("kind,workers", CASES)
def test_damaged_event_files_end_the_command_in_one_line(tmp_path, capsys, kind, workers):
    argv, expected = _damage(kind, tmp_path / "data")
    argv += ["--data-dir", str(tmp_path / "data"), "--no-download", "--batch-size", "2"]
    argv += ["--epochs", "1", "--quiet", "--no-plots", "--workers", workers]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    assert not multiprocessing.active_children()  # the loader's workers stopped first
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in expected:
        assert word in err, err


def test_zero_event_recordings_are_empty_samples_in_every_format(tmp_path):
    pytest.importorskip("dv_processing")
    import dv_processing as dv
    from fake_data import make_cifar10_dvs

    base = make_cifar10_dvs(tmp_path, per_class=10, events=5)
    path = sorted((base / "cat").glob("*.aedat4"))[-1]  # the last cat file: a test sample
    writer = dv.io.MonoCameraWriter(
        str(path), dv.io.MonoCameraWriter.EventOnlyConfig("DVXplorer_sample", (128, 128))
    )
    del writer  # no events at all
    _, test = neuromorphic.cifar10_dvs_dataset(tmp_path, 2, 2, 4, size=(16, 16), **LOAD)
    sums = [float(test.dataset[i][0].sum()) for i in range(len(test.dataset))]
    assert sorted(sums)[0] == 0.0 and sorted(sums)[1] == 5.0
    make_nmnist(tmp_path / "n", per_split=(3, 2))
    empty = sorted((tmp_path / "n" / "NMNIST" / "Test").rglob("*.bin"))[0]
    empty.write_bytes(b"")
    _, test = neuromorphic.nmnist_dataset(tmp_path / "n", 2, 2, 4, **LOAD)
    assert float(test.dataset[0][0].sum()) == 0.0


def test_size_must_fit_the_sensor():
    for size in [(0, 0), (129, 16), (16,), "16", (16.0, 16.0)]:
        with pytest.raises(ValueError, match=r"size must be \(h, w\) with 1 <= h <= 128"):
            neuromorphic.dvs_gesture_dataset("/nonexistent", 2, 2, 4, size=size, **LOAD)


# ---- 5. the frame cache trusts only private, finite, up-to-date entries -----------------


def _one_sample_loaders(root, cache_dir=None):
    return neuromorphic.nmnist_dataset(root, 2, 8, 4, cache_dir=cache_dir, **LOAD)


def _expected(made, T=4):
    label, x, y, t, p = made["Test"][0]
    return neuromorphic.integrate(np.rec.fromarrays([x, y, t, p], names="x,y,t,p"), (34, 34, 2), T)


def test_a_world_writable_cache_root_gets_a_private_folder_inside(tmp_path):
    made = make_nmnist(tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o1777)
    _, test = _one_sample_loaders(tmp_path, shared)
    own = shared / f"snetx-frames-{os.getuid()}"
    assert test.dataset.cache.parent == own and (own.stat().st_mode & 0o777) == 0o700
    np.testing.assert_array_equal(test.dataset[0][0].numpy(), _expected(made))


@ROOT_ONLY
def test_a_planted_folder_or_file_of_another_user_is_never_served(tmp_path):
    made = make_nmnist(tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    _, test = _one_sample_loaders(tmp_path, shared)
    entry = test.dataset.cache / "0.npz"
    planted = dict(np.load(entry))
    planted["frames"] = np.full_like(planted["frames"], 7.0)  # sum 27744 instead of the truth
    np.savez(entry, **planted)
    os.chown(entry, 12345, 12345)
    with pytest.warns(RuntimeWarning, match="belongs to uid 12345"):
        _, test = _one_sample_loaders(tmp_path, shared)
        frames = test.dataset[0][0].numpy()
    np.testing.assert_array_equal(frames, _expected(made))
    # a private folder pre-created by another user: frames are computed in memory
    other = tmp_path / "other"
    other.mkdir()
    os.chmod(other, 0o1777)
    (other / f"snetx-frames-{os.getuid()}").mkdir(mode=0o700)
    os.chown(other / f"snetx-frames-{os.getuid()}", 12345, 12345)
    with pytest.warns(RuntimeWarning, match="computed in memory"):
        _, test = _one_sample_loaders(tmp_path, other)
    assert test.dataset.cache is None
    np.testing.assert_array_equal(test.dataset[0][0].numpy(), _expected(made))


@pytest.mark.parametrize("attack", ["nan frames", "symlink", "wrong dtype", "source changed"])
def test_untrusted_entries_are_recomputed_with_one_warning(tmp_path, attack):
    made = make_nmnist(tmp_path)
    cache = tmp_path / "cache"
    _, test = _one_sample_loaders(tmp_path, cache)
    entry = test.dataset.cache / "0.npz"
    record = dict(np.load(entry))
    source = neuromorphic.sample_file(test.dataset.source, 0)
    if attack == "nan frames":
        record["frames"][0, 0, 0, 0] = np.nan
        np.savez(entry, **record)
    elif attack == "wrong dtype":
        record["frames"] = record["frames"].astype(np.float64)
        np.savez(entry, **record)
    elif attack == "symlink":
        fake = tmp_path / "fake.npz"
        np.savez(fake, **{**record, "frames": np.ones_like(record["frames"])})
        entry.unlink()
        entry.symlink_to(fake)
    else:  # the source changed in place, with its old size and modification time
        st = source.stat()
        data = bytearray(source.read_bytes())
        data[0] = (data[0] + 1) % 34  # the first event moves one pixel right
        source.write_bytes(bytes(data))
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert source.stat().st_size == st.st_size and source.stat().st_mtime_ns == st.st_mtime_ns
    with pytest.warns(RuntimeWarning, match="recomputed") as caught:
        _, test = _one_sample_loaders(tmp_path, cache)
        frames = [test.dataset[0][0].numpy() for _ in range(3)]
    assert len([w for w in caught if "recomputed" in str(w.message)]) == 1
    if attack == "source changed":
        events = neuromorphic.read_events(test.dataset.source, 0, (34, 34, 2))
        want = neuromorphic.integrate(events, (34, 34, 2), 4)
        assert not np.array_equal(want, _expected(made))
    else:
        want = _expected(made)
    for f in frames:
        np.testing.assert_array_equal(f, want)


def test_unchanged_sources_are_served_from_the_cache_without_reading_them(tmp_path, monkeypatch):
    make_nmnist(tmp_path)
    cache = tmp_path / "cache"
    _one_sample_loaders(tmp_path, cache)
    from snetx.dataset import _frame_cache

    monkeypatch.setattr(_frame_cache, "content_hash", lambda *a: pytest.fail("read the source"))
    _, test = _one_sample_loaders(tmp_path, cache)
    assert test.dataset[0][0].sum() > 0


# ---- 10. a read-only cache, and nothing written into the data folder --------------------


def test_the_default_cache_is_not_inside_the_data_folder(tmp_path, _private_frame_cache):
    make_nmnist(tmp_path / "data")
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "data").rglob("*"))
    neuromorphic.nmnist_dataset(tmp_path / "data", 2, 8, 4, **LOAD)
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "data").rglob("*")) == before
    assert list(_private_frame_cache.rglob("*.npz"))


@ROOT_ONLY
def test_a_complete_cache_on_a_read_only_mount_is_used_without_writing(tmp_path):
    made = make_nmnist(tmp_path / "data")
    cache = tmp_path / "cache"
    _one_sample_loaders(tmp_path / "data", cache)
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "--bind", str(cache), str(ro)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here")
    try:
        if subprocess.run(
            ["mount", "-o", "remount,ro,bind", str(ro)], capture_output=True
        ).returncode:
            pytest.skip("cannot remount read-only here")
        _, test = _one_sample_loaders(tmp_path / "data", ro)  # no warning, no error
        np.testing.assert_array_equal(test.dataset[0][0].numpy(), _expected(made))
    finally:
        subprocess.run(["umount", str(ro)], check=False)


def test_the_training_command_takes_a_cache_dir(tmp_path):
    make_nmnist(tmp_path / "data", per_split=(8, 4))
    argv = [
        "--dataset",
        "nmnist",
        "--data-dir",
        str(tmp_path / "data"),
        "--no-download",
        "--T",
        "2",
    ]
    argv += ["--batch-size", "2", "--epochs", "1", "--quiet", "--no-plots", "--workers", "0"]
    assert main([*argv, "--cache-dir", str(tmp_path / "frames"), "--out", str(tmp_path / "r")]) == 0
    assert len(list((tmp_path / "frames").rglob("*.npz"))) == 12


# ---- 11. a full disk while filling the cache --------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mnt)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_full_disk_while_caching_says_so_and_leaves_no_partial_entry(
    tmp_path, small_disk, capsys, workers
):
    make_nmnist(tmp_path / "data", per_split=(8, 4))
    argv = ["--dataset", "nmnist", "--data-dir", str(tmp_path / "data"), "--no-download"]
    argv += ["--batch-size", "2", "--epochs", "1", "--quiet", "--no-plots", "--workers", workers]
    argv += ["--cache-dir", str(small_disk), "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    # the loader's workers were stopped before the command returned: none is left
    # writing into the cache after the error
    assert not multiprocessing.active_children()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "no space left on device" in err and str(small_disk) in err
    assert not list(small_disk.rglob(".tmp-*"))
    for entry in small_disk.rglob("*.npz"):  # what was written is whole
        assert np.load(entry)["frames"].shape == (10, 2, 34, 34)
