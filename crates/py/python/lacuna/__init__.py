"""lacuna: learn a diffusion prior of complete fields from incomplete observations, and fill
new gaps with it.

The same library as the ``lacuna`` command line, called with numpy arrays (or xarray
DataArrays) instead of files::

    import lacuna
    run = lacuna.train(values, out="run", steps=2000)      # NaN = missing
    filled = run.impute(new_values, ensemble=10)            # .mean, .std, .samples
    bh = lacuna.baseline("biharmonic", new_values)
    scores = lacuna.eval(filled.mean, truth, mask=~np.isnan(new_values))

Arrays are fields ``[H, W]`` (one field), ``[N, H, W]`` (N fields of one variable),
``[N, C, H, W]`` (C channels) or ``[N, T, C, H, W]`` (trajectories of T frames). Missing
entries are NaN, or given by ``mask`` (True = observed). Outputs come back in the input's
shape; an ``xarray.DataArray`` input comes back as a DataArray (or a Dataset with ``mean``,
``std``, ``samples``) with the input's dims, coords and attrs. Sites that can never be
observed (land) are given by ``observable`` (False = never), and are NaN in every output.

Errors raise :class:`LacunaError` with the command line's message. Progress goes to standard
error, as on the command line (``quiet=True`` silences it).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Optional, Tuple

import numpy as np

from . import _lacuna
from ._lacuna import LacunaError

__all__ = ["LacunaError", "Run", "Completion", "train", "baseline", "eval", "__version__"]
__version__ = _lacuna.version()


class _Layout:
    """How a user's array maps to the library's ``[N, (T,) C, H, W]``, and back."""

    def __init__(self, values: Any, what: str = "values"):
        self.xr = None
        if _is_dataarray(values):
            self.xr = values
            values = values.values
        arr = np.asarray(values)
        if arr.dtype.kind not in "fiub":
            raise LacunaError(f"{what} must be numeric, got dtype {arr.dtype}")
        if arr.ndim < 2 or arr.ndim > 5:
            raise LacunaError(
                f"{what} must be [H, W], [N, H, W], [N, C, H, W] or [N, T, C, H, W]; got {arr.ndim} dimension(s)"
            )
        self.shape = arr.shape
        self.array = arr

    def to_lib(self, arr: np.ndarray) -> np.ndarray:
        a = np.asarray(arr)
        if a.ndim == 2:
            a = a[None, None]
        elif a.ndim == 3:
            a = a[:, None]
        return np.ascontiguousarray(a)

    def from_lib(self, arr: np.ndarray, extra: int = 0) -> np.ndarray:
        """Back to the user's shape; ``extra`` leading axes after N (the sample axis)."""
        lead = arr.shape[: 1 + extra]
        if len(self.shape) == 2:
            tail = self.shape
            lead = arr.shape[1 : 1 + extra]
        else:
            tail = self.shape[1:]
        return arr.reshape(tuple(lead) + tuple(tail))

    def wrap(self, arr: np.ndarray, name: Optional[str] = None):
        """A DataArray like the input when the input was one; the array otherwise."""
        if self.xr is None:
            return arr
        return self.xr.copy(data=arr).rename(name or self.xr.name)


def _is_dataarray(x: Any) -> bool:
    return type(x).__name__ == "DataArray" and hasattr(x, "dims") and hasattr(x, "coords")


def _inputs(values: Any, mask: Any = None, observable: Any = None, what: str = "values"):
    """(layout, values float32, mask uint8, observable uint8 or None) in the library's shape."""
    layout = _Layout(values, what)
    v = layout.array.astype(np.float32, copy=False)
    if mask is None:
        m = np.isfinite(v)
    else:
        m = np.asarray(mask.values if _is_dataarray(mask) else mask)
        if m.shape != v.shape:
            raise LacunaError(f"mask has shape {m.shape}, {what} have {v.shape}")
        m = m.astype(bool)
        bad = m & ~np.isfinite(v)
        if bad.any():
            raise LacunaError(f"{what} are NaN or infinite at {int(bad.sum())} entries the mask says are observed")
    v = np.where(m, v, 0.0).astype(np.float32)
    ok = None
    if observable is not None:
        o = np.asarray(observable.values if _is_dataarray(observable) else observable).astype(np.uint8)
        if o.ndim == 2:
            o = o[None]
        ok = np.ascontiguousarray(o)
    return layout, layout.to_lib(v), layout.to_lib(m.astype(np.uint8)), ok


@dataclasses.dataclass
class Completion:
    """Filled fields: the posterior ``mean`` (observations unchanged), and with the multi-step
    sampler ``samples`` (sample axis after the field axis) and their ``std``."""

    mean: Any
    std: Any = None
    samples: Any = None


def _completion(layout: _Layout, out: dict):
    mean = layout.from_lib(out["mean"])
    std = layout.from_lib(out["std"]) if "std" in out else None
    samples = layout.from_lib(out["samples"], extra=1) if "samples" in out else None
    if layout.xr is None:
        return Completion(mean, std, samples)
    import xarray as xr

    da = layout.xr
    name = da.name or "values"
    data = {name: layout.wrap(mean, name)}
    if std is not None:
        data[f"{name}_std"] = layout.wrap(std, f"{name}_std")
    if samples is not None:
        dims = (da.dims[0], "sample") + tuple(da.dims[1:]) if da.ndim > 2 else ("sample",) + tuple(da.dims)
        data[f"{name}_samples"] = xr.DataArray(samples, dims=dims, coords=da.coords, attrs=da.attrs)
    return xr.Dataset(data, attrs=dict(da.attrs))


class Run:
    """A trained run directory (what ``lacuna train`` and :func:`train` write)."""

    def __init__(self, path: "os.PathLike[str] | str"):
        self.path = os.fspath(path)
        info = os.path.join(self.path, "run.json")
        if not os.path.isfile(info):
            raise LacunaError(f"{self.path}: not a run directory (no run.json)")
        with open(info) as f:
            self.info = json.load(f)

    def __repr__(self) -> str:
        return f"lacuna.Run({self.path!r})"

    def impute(
        self,
        values: Any,
        mask: Any = None,
        ensemble: int = 10,
        steps: int = 1,
        samples: int = 0,
        seed: int = 0,
        *,
        observable: Any = None,
        last: bool = False,
        context_ratio: "Optional[float | str]" = None,
        shifts: Optional[Tuple[int, int]] = None,
        other_grid: bool = False,
        quiet: bool = False,
    ):
        """Fills the gaps of ``values`` (NaN, or ``mask`` False): ``steps=1`` is the
        single-step ensemble of ``ensemble`` contexts (the posterior mean); ``steps`` > 1 the
        multi-step sampler, drawing ``samples`` posterior samples. ``shifts=(rows, cols)``
        rolls each ensemble member by random multiples of that circular shift (default: the
        run's declared ``shift_symmetry``; ``(0, 0)`` turns it off). ``context_ratio`` is
        the share of the observation in each ensemble context (1: the whole observation, 0:
        the training rule), or ``"auto"``: whichever of the two completes hidden observed
        entries of ``values`` better (as ``lacuna impute --context-ratio auto``)."""
        layout, v, m, ok = _inputs(values, mask, observable)
        out = _lacuna.impute(
            self.path, v, m, ok, ensemble, steps, samples, seed, last, context_ratio, shifts, other_grid, quiet
        )
        return _completion(layout, out)


def train(
    values: Any,
    mask: Any = None,
    *,
    out: "os.PathLike[str] | str",
    partition: Optional[str] = None,
    steps: Optional[int] = None,
    prior: Optional[str] = None,
    config: Optional[str] = None,
    observable: Any = None,
    resume: bool = False,
    quiet: bool = False,
    **settings: Any,
) -> Run:
    """Trains a denoiser on incomplete fields (it never sees a complete one) into the run
    directory ``out``; returns the :class:`Run`.

    ``partition`` is ``pixel``, ``block``, ``ambient``, ``missdiff``, ``prior`` or
    ``intersect`` (the last two with ``prior=`` a mask prior directory); ``config`` a TOML
    file as ``lacuna train --config`` reads; any other keyword is a config key
    (``batch=16``, ``time_budget=600.0``, ``model={"base_channels": 32}``), applied last.
    """
    if steps is not None:
        settings["steps"] = steps
    _, v, m, ok = _inputs(values, mask, observable)
    _lacuna.train(
        v,
        m,
        os.fspath(out),
        ok,
        partition,
        None if prior is None else os.fspath(prior),
        None if config is None else os.fspath(config),
        json.dumps(settings),
        resume,
        quiet,
    )
    return Run(out)


def baseline(
    method: str,
    values: Any,
    mask: Any = None,
    *,
    train: Any = None,
    train_mask: Any = None,
    observable: Any = None,
    rank: int = 32,
    iters: int = 20,
    neighbours: int = 100,
    seed: int = 0,
    periodic: bool = False,
):
    """Completes ``values`` with a classical method (``nearest``, ``biharmonic``, ``krige``,
    ``em-gaussian``, ...); the methods that learn from data read ``train`` (NaN = missing).
    ``periodic``: the fields wrap around (simulated on a torus); ``fill``, ``harmonic``,
    ``biharmonic`` and the kriging methods then wrap too.
    Returns a :class:`Completion` (``std`` for the probabilistic ones)."""
    layout, v, m, ok = _inputs(values, mask, observable)
    tv = tm = None
    if train is not None:
        _, tv, tm, _ = _inputs(train, train_mask, what="train")
    out = _lacuna.baseline(method, v, m, ok, tv, tm, rank, iters, neighbours, seed, periodic)
    return _completion(layout, out)


def eval(mean: Any, truth: Any, mask: Any, std: Any = None) -> dict:
    """Scores a completion ``mean`` (and ``std``) against ``truth`` on the entries that
    ``mask`` (True = observed) says were missing: the metrics of ``lacuna eval``."""
    if isinstance(mean, Completion):
        mean, std = mean.mean, mean.std if std is None else std
    layout = _Layout(mean, "mean")
    lib = lambda a: layout.to_lib(np.asarray(a.values if _is_dataarray(a) else a).astype(np.float32))
    t = np.asarray(truth.values if _is_dataarray(truth) else truth)
    mk = np.asarray(mask.values if _is_dataarray(mask) else mask)
    if t.shape != layout.shape or mk.shape != layout.shape:
        raise LacunaError(f"mean has shape {layout.shape}, truth {t.shape}, mask {mk.shape}")
    return json.loads(
        _lacuna.eval(lib(mean), lib(t), layout.to_lib(mk.astype(np.uint8)), None if std is None else lib(std))
    )
