"""The Python module: train from numpy arrays with NaN gaps, impute, baselines, eval, xarray
in and out, errors as exceptions, NetCDF completions opened by xarray. Run by `make test`
(after `make python`); small fields and a tiny network, so it takes seconds."""

import json
import os
import time
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import torch  # noqa: F401  (imported first on purpose: lacuna must share its libtorch)
import lacuna

ROOT = Path(__file__).resolve().parents[3]
TINY = dict(
    batch=4,
    val_every=10,
    checkpoint_every=10,
    log_every=1,
    model=dict(channels=8, mults=[1, 2], res_blocks=1, attention=False, heads=2),
    optim=dict(warmup=2),
)


def smooth_fields(n, size=12, seed=0):
    """Smooth periodic random fields (a few low Fourier modes), [N, H, W]."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    out = np.zeros((n, size, size), np.float32)
    for kx in range(3):
        for ky in range(3):
            a, b = rng.normal(size=(2, n, 1, 1)) / (1 + kx + ky)
            phase = 2 * np.pi * (kx * x + ky * y) / size
            out += (a * np.cos(phase) + b * np.sin(phase)).astype(np.float32)
    return out


def with_gaps(truth, observed=0.3, seed=1):
    rng = np.random.default_rng(seed)
    values = truth.copy()
    values[rng.random(truth.shape) > observed] = np.nan
    return values


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    values = with_gaps(smooth_fields(24))
    run = lacuna.train(values, out=d / "run", steps=20, quiet=True, **TINY)
    return run, d


def test_torch_and_lacuna_share_one_libtorch():
    maps = {line.split()[-1] for line in open("/proc/self/maps") if "libtorch_cpu" in line}
    assert len(maps) == 1, maps


def test_train_from_nan_gaps_then_impute_keeps_observations(trained):
    run, _ = trained
    assert isinstance(run, lacuna.Run)
    assert run.info["provenance"]["settings"]["steps"] == 20
    truth = smooth_fields(5, seed=7)
    values = with_gaps(truth, seed=8)
    filled = run.impute(values, ensemble=3, quiet=True)
    assert filled.mean.shape == values.shape and filled.mean.dtype == np.float32
    observed = ~np.isnan(values)
    assert np.array_equal(filled.mean[observed], values[observed]), "observed entries come back unchanged"
    assert np.isfinite(filled.mean).all()
    assert filled.std is None and filled.samples is None

    # Posterior samples with the multi-step sampler; one field [H, W] keeps its shape.
    one = run.impute(values[0], ensemble=2, steps=3, samples=2, seed=1, quiet=True)
    assert one.mean.shape == (12, 12) and one.samples.shape == (2, 12, 12) and one.std.shape == (12, 12)
    assert np.array_equal(one.samples[1][observed[0]], values[0][observed[0]])

    # An explicit mask means the same as NaN gaps.
    again = run.impute(np.nan_to_num(values), mask=observed, ensemble=3, quiet=True)
    assert np.array_equal(again.mean, filled.mean)

    # Contexts chosen on the data are one of the two explicit choices.
    auto = run.impute(values, ensemble=3, context_ratio="auto", quiet=True)
    explicit = [run.impute(values, ensemble=3, context_ratio=r, quiet=True).mean for r in (0, 1.0)]
    assert any(np.array_equal(auto.mean, e) for e in explicit)

    scores = lacuna.eval(filled, truth, observed)
    assert scores["missing_entries"] == int((~observed).sum())
    assert scores["mse_missing"] > 0


def test_baselines_and_land(tmp_path):
    truth = smooth_fields(3, seed=3)
    values = with_gaps(truth, observed=0.5)
    land = np.ones((12, 12), bool)
    land[:, 0] = False
    bh = lacuna.baseline("biharmonic", values, observable=land)
    assert bh.mean.shape == values.shape
    assert np.isnan(bh.mean[:, :, 0]).all(), "never-observable sites are NaN"
    assert np.isfinite(bh.mean[:, :, 1:]).all()
    kr = lacuna.baseline("krige", values, train=with_gaps(smooth_fields(20, seed=4)))
    assert kr.std is not None and kr.std.shape == values.shape


def test_xarray_in_keeps_dims_coords_and_attrs(trained):
    xr = pytest.importorskip("xarray")
    run, _ = trained
    values = with_gaps(smooth_fields(2, seed=5))
    da = xr.DataArray(
        values,
        dims=("time", "lat", "lon"),
        coords={"time": [10.0, 20.0], "lat": np.linspace(-11, 11, 12), "lon": np.linspace(180, 202, 12)},
        attrs={"units": "K"},
        name="sst",
    )
    ds = run.impute(da, ensemble=2, quiet=True)
    assert isinstance(ds, xr.Dataset)
    assert ds["sst"].dims == da.dims and ds["sst"].attrs["units"] == "K"
    assert np.array_equal(ds["lat"].values, da["lat"].values)
    bh = lacuna.baseline("biharmonic", da)
    assert isinstance(bh, xr.Dataset) and np.array_equal(bh["lon"].values, da["lon"].values)


def test_bad_input_raises_python_exceptions(trained, tmp_path):
    run, _ = trained
    good = with_gaps(smooth_fields(2))
    with pytest.raises(lacuna.LacunaError, match="dimension"):
        run.impute(np.zeros(12, np.float32))
    with pytest.raises(lacuna.LacunaError, match="mask has shape"):
        run.impute(good, mask=np.ones((2, 12, 11), bool))
    with pytest.raises(lacuna.LacunaError, match="not a run directory"):
        lacuna.Run(tmp_path / "nothing")
    with pytest.raises(lacuna.LacunaError, match="invalid training settings"):
        lacuna.train(good, out=tmp_path / "r", steps=2, no_such_setting=1, quiet=True)
    with pytest.raises(lacuna.LacunaError, match="unknown partition"):
        lacuna.train(good, out=tmp_path / "r", partition="magic", quiet=True)
    with pytest.raises(lacuna.LacunaError, match="unknown baseline"):
        lacuna.baseline("magic", good)
    with pytest.raises(lacuna.LacunaError, match="grid|trained on"):
        run.impute(with_gaps(smooth_fields(2, size=16)), quiet=True)
    with pytest.raises(lacuna.LacunaError, match="nothing is missing|nothing to impute"):
        run.impute(smooth_fields(1), quiet=True)
    with pytest.raises(lacuna.LacunaError, match="needs a periodic run"):
        run.impute(with_gaps(smooth_fields(1)), shifts=(1, 1), quiet=True)
    with pytest.raises(lacuna.LacunaError, match="auto"):
        run.impute(good, context_ratio="sometimes", quiet=True)
    # The process survived all of that and still works.
    assert run.impute(good, ensemble=1, quiet=True).mean.shape == good.shape


def test_netcdf_completion_of_imported_coads_opens_in_xarray(trained, tmp_path):
    xr = pytest.importorskip("xarray")
    _, d = trained
    exe = os.environ.get("LACUNA_BIN", str(ROOT / "target" / "release" / "lacuna"))
    if not os.path.exists(exe):
        pytest.skip(f"{exe} not built")
    src = ROOT / "tests" / "data" / "coads_sst_slice.nc"

    def cli(*args):
        subprocess.run([exe, "--quiet", *map(str, args)], check=True, capture_output=True)

    coads = tmp_path / "coads.npz"
    cli("data", "import", src, "--var", "SST", "--observable", f"{src}:ROSE<0", "--out", coads)
    # A (tiny) learned run on the imported file, imputing to NetCDF; a baseline too.
    (tmp_path / "tiny.toml").write_text(
        "steps = 4\nbatch = 4\n[model]\nchannels = 8\nmults = [1, 2]\nres_blocks = 1\nattention = false\n"
    )
    cli("train", "--data", coads, "--out", tmp_path / "run", "--config", tmp_path / "tiny.toml")
    cli("impute", "--run", tmp_path / "run", "--data", coads, "--out", tmp_path / "filled.nc", "--ensemble", "2")
    cli("baseline", "biharmonic", "--data", coads, "--out", tmp_path / "bh.nc")
    ref = xr.open_dataset(src, decode_times=False)
    land = ref["ROSE"].values >= 0
    for name, what in [("filled.nc", "run"), ("bh.nc", "baseline")]:
        out = xr.open_dataset(tmp_path / name, decode_times=False)
        for axis in ("COADSX", "COADSY", "TIME"):
            assert np.array_equal(out[axis].values, ref[axis].values.astype(np.float64)), (name, axis)
            assert out[axis].attrs.get("units") == ref[axis].attrs.get("units"), (name, axis)
        assert out["SST"].attrs["units"] == ref["SST"].attrs["units"] == "Deg C"
        assert np.isnan(out["SST"].values[:, land]).all(), f"{name}: land is NaN"
        assert np.isfinite(out["SST"].values[:, ~land]).all(), name
        observed = out["SST_observed"].values == 1
        assert np.array_equal(out["SST"].values[observed], ref["SST"].values[observed]), name
        prov = json.loads(out.attrs["lacuna_provenance"])
        assert what in prov["settings"] or (what == "baseline" and prov["settings"]["baseline"] == "biharmonic"), prov
        # lacuna reads its own output back.
        cli("data", "import", tmp_path / name, "--var", "SST", "--out", tmp_path / f"{name}.npz")


def test_weights_load_in_pytorch_with_the_reference_network(trained):
    """README "Files": a run's model.safetensors in PyTorch, its metadata saying how to build it."""
    import tomllib

    from safetensors import safe_open
    from safetensors.torch import load_file

    sys.path.insert(0, str(ROOT / "scripts"))
    from torch_reference import UNet

    run, _ = trained
    path = os.path.join(run.path, "model.safetensors")
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    cfg, info = tomllib.loads(meta["config"]), json.loads(meta["run"])
    assert set(json.loads(meta["norm"])) >= {"mean", "std"} and meta["lacuna_version"] == lacuna.__version__
    inputs = 3 if cfg["denoiser"]["fill_input"] else 2
    net = UNet(info["dims"]["c"], cfg["model"], inputs=inputs)
    net.load_state_dict(load_file(path))  # strict: every name and shape matches
    with torch.inference_mode():
        out = net.forward_raw(torch.zeros(2), torch.zeros(2, inputs, 12, 12))
    assert out.shape == (2, 1, 12, 12)


def test_ctrl_c_stops_training_cleanly_and_keeps_the_weights(tmp_path):
    import signal
    import threading

    values = with_gaps(smooth_fields(24))
    out = tmp_path / "interrupted"
    done = threading.Event()

    def interrupt_once_training():
        # Ctrl-C once the loop has logged a step (not after a fixed delay, which a loaded
        # machine can spend before training starts); training's time budget bounds the wait.
        metrics = out / "metrics.jsonl"
        while not done.is_set():
            if metrics.exists() and '"loss"' in metrics.read_text():
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.05)

    # Python's own Ctrl-C handler, whatever this process inherited: a job started in the
    # background by a non-interactive shell (`make test &`) starts with SIGINT ignored, and
    # Python then installs no handler, so the interrupt would never arrive.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    watcher = threading.Thread(target=interrupt_once_training, daemon=True)
    watcher.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            # The budget bounds the test if the interrupt were lost (it then fails, not hangs).
            lacuna.train(values, out=out, steps=1_000_000, time_budget=300.0, quiet=True, **TINY)
    finally:
        done.set()
        watcher.join()
        signal.signal(signal.SIGINT, previous)
    # The run stopped after a step and wrote its checkpoint and weights: usable at once.
    steps = [json.loads(l) for l in open(out / "metrics.jsonl") if '"loss"' in l]
    assert 0 < steps[-1]["step"] < 1_000_000
    assert (out / "checkpoint.safetensors").exists()
    filled = lacuna.Run(out).impute(values[:2], ensemble=1, last=True, quiet=True)
    assert np.isfinite(filled.mean).all()
