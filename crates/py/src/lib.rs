//! `lacuna._lacuna`: the Python module's native half. It calls the same library functions as
//! the command line (train, impute, the baselines, eval) with numpy arrays in and out; the
//! Python half (`python/lacuna/__init__.py`) turns NaN gaps into masks, handles xarray and
//! shapes, and is what users import.
//!
//! The library works on files (its contract is the `.npz` of DESIGN.md), so each call writes
//! its input arrays to a temporary directory, runs, and reads the outputs back into arrays
//! that numpy then owns (moved, not copied). Errors become `lacuna.LacunaError` with the CLI's
//! message; a panic inside the library (libtorch reports failures as panics) becomes one too,
//! never a process abort. The GIL is released while the library works.

use anyhow::{bail, ensure, Context, Result};
use lacuna::config::TrainConfig;
use lacuna::data::npy::Npz;
use lacuna::data::{Dims, FieldSet};
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use std::path::{Path, PathBuf};

create_exception!(_lacuna, LacunaError, PyException, "An error reported by lacuna (bad input, a failed run).");

/// Runs `f` without the GIL; its error or panic becomes a `LacunaError`.
fn call<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T> + Send) -> PyResult<T> {
    let caught = py.detach(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    match caught {
        Ok(r) => r.map_err(lacuna_error),
        Err(payload) => Err(LacunaError::new_err(panic_message(&payload))),
    }
}

/// A library error as the Python exception, with the CLI's one-line message.
fn lacuna_error(e: anyhow::Error) -> PyErr {
    LacunaError::new_err(e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": "))
}

/// The one-line error of a panic inside the library.
fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    format!("internal error (please report): {}", msg.lines().next().unwrap_or(""))
}

/// A field set from `values` and `mask` (both `[N, C, H, W]` or `[N, T, C, H, W]`; mask 1 =
/// observed) and, optionally, `observable` (`[C, H, W]` or `[N, C, H, W]`, 0 = never
/// observable, such as land).
fn field_set(
    values: &PyReadonlyArrayDyn<'_, f32>,
    mask: &PyReadonlyArrayDyn<'_, u8>,
    observable: Option<&PyReadonlyArrayDyn<'_, u8>>,
) -> Result<FieldSet> {
    let shape = values.shape().to_vec();
    ensure!(mask.shape() == shape.as_slice(), "values have shape {shape:?} but mask has {:?}", mask.shape());
    let (n, dims) = match shape[..] {
        [n, c, h, w] => (n, Dims { t: 1, c, h, w }),
        [n, t, c, h, w] => (n, Dims { t, c, h, w }),
        _ => bail!("values must be [N, C, H, W] or [N, T, C, H, W], got shape {shape:?}"),
    };
    ensure!(n > 0 && !dims.is_empty(), "values of shape {shape:?} hold no field");
    let v = values.as_slice().context("values must be C-contiguous")?.to_vec();
    let m = mask.as_slice().context("mask must be C-contiguous")?.to_vec();
    if let Some(k) = v.iter().zip(&m).position(|(x, &o)| o != 0 && !x.is_finite()) {
        bail!("values[{k}] (flat index) is {} where the mask says observed", v[k]);
    }
    let mut set = FieldSet::new(n, dims, v, m, None)?;
    if let Some(ok) = observable {
        let (frame, len) = (dims.frame().len(), dims.len());
        let ok_shape = ok.shape().to_vec();
        let ok = ok.as_slice().context("observable must be C-contiguous")?;
        let per_site: Vec<u8> = if ok.len() == dims.c * dims.sites() {
            (0..n).flat_map(|_| (0..dims.t).flat_map(|_| ok.iter().copied())).collect()
        } else if ok.len() == n * dims.c * dims.sites() {
            ok.chunks_exact(frame).flat_map(|f| (0..dims.t).flat_map(move |_| f.iter().copied())).collect()
        } else {
            bail!("observable has shape {ok_shape:?}; expected [C, H, W] or [N, C, H, W] of the values' grid")
        };
        debug_assert_eq!(per_site.len(), n * len);
        set.set_observable(per_site)?;
    }
    Ok(set)
}

/// A numpy array of `data` with `shape`, owned by numpy from now on.
fn array<'py>(py: Python<'py>, data: Vec<f32>, shape: &[usize]) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    data.into_pyarray(py).reshape(shape.to_vec())
}

/// The `mean`, `std` and `samples` arrays of a completion file, each with its shape.
type Outputs = Vec<(String, Vec<f32>, Vec<usize>)>;

fn read_outputs(path: &Path) -> Result<Outputs> {
    let mut npz = Npz::open(path)?;
    let mut out = Vec::new();
    for name in ["mean", "std", "samples"] {
        if let Some(a) = npz.get(name)? {
            out.push((name.to_string(), a.to_f32(), a.shape.clone()));
        }
    }
    Ok(out)
}

fn outputs_dict<'py>(py: Python<'py>, outputs: Outputs) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let d = pyo3::types::PyDict::new(py);
    for (name, data, shape) in outputs {
        d.set_item(name, array(py, data, &shape)?)?;
    }
    Ok(d)
}

/// Deep-merges `over` into `base` (objects key by key, anything else replaced).
fn merge(base: &mut serde_json::Value, over: serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// The training configuration: `config` (a TOML file) or the defaults, then `partition`
/// (with its defaults; `prior` for the Work II partitions), then `settings` (JSON object of
/// config keys, nested tables as objects), checked as the CLI checks a config file.
fn train_config(
    config: Option<&Path>,
    partition: Option<&str>,
    prior: Option<&Path>,
    settings: &str,
) -> Result<TrainConfig> {
    use clap::ValueEnum;
    use lacuna::method::partition::PartitionKind;
    let mut cfg = match config {
        Some(p) => TrainConfig::load(p)?,
        None => TrainConfig::default(),
    };
    if let Some(name) = partition {
        let kind = PartitionKind::from_str(name, true).map_err(|_| {
            let names: Vec<String> = PartitionKind::value_variants()
                .iter()
                .filter_map(|k| k.to_possible_value())
                .map(|v| v.get_name().to_string())
                .collect();
            anyhow::anyhow!("unknown partition {name:?} (one of {})", names.join(", "))
        })?;
        let dir = match kind {
            PartitionKind::Prior | PartitionKind::Intersect => {
                let dir = prior
                    .context("partitions prior and intersect need prior=DIR (a mask prior from `lacuna masks fit`)")?;
                std::fs::canonicalize(dir).with_context(|| format!("{}: no such mask prior", dir.display()))?
            }
            _ => PathBuf::new(),
        };
        cfg.partition = kind.with_defaults(dir);
    }
    let over: serde_json::Value = serde_json::from_str(settings).context("settings are not a JSON object")?;
    ensure!(over.is_object(), "settings must be a mapping of config keys");
    let mut value = serde_json::to_value(&cfg)?;
    merge(&mut value, over);
    let cfg: TrainConfig = serde_json::from_value(value).context("invalid training settings")?;
    cfg.validate().context("invalid training settings")?;
    Ok(cfg)
}

/// Trains a run in `out` on `values`/`mask`; returns the training summary as JSON.
#[pyfunction]
#[pyo3(signature = (values, mask, out, observable=None, partition=None, prior=None, config=None, settings="{}", resume=false, quiet=false))]
#[allow(clippy::too_many_arguments)]
fn train(
    py: Python<'_>,
    values: PyReadonlyArrayDyn<'_, f32>,
    mask: PyReadonlyArrayDyn<'_, u8>,
    out: PathBuf,
    observable: Option<PyReadonlyArrayDyn<'_, u8>>,
    partition: Option<String>,
    prior: Option<PathBuf>,
    config: Option<PathBuf>,
    settings: &str,
    resume: bool,
    quiet: bool,
) -> PyResult<String> {
    let set = field_set(&values, &mask, observable.as_ref()).map_err(|e| LacunaError::new_err(format!("{e:#}")))?;
    let settings = settings.to_string();
    // Training runs on its own thread while this one watches for Ctrl-C (Python's signal
    // handlers run only here, with the GIL): an interrupt asks the loop to stop after its
    // step, which writes the checkpoint, and is raised once training has returned.
    let work = move || -> Result<String> {
        let cfg = if resume {
            ensure!(
                partition.is_none() && config.is_none() && settings.trim() == "{}",
                "resume=True continues the run with its own settings; give no other settings"
            );
            let run = lacuna::run::RunDir(out.clone());
            run.ensure_resumable()?;
            TrainConfig::load_run(&run.config())?
        } else {
            train_config(config.as_deref(), partition.as_deref(), prior.as_deref(), &settings)?
        };
        let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
        let data = tmp.path().join("train.npz");
        set.save(&data)?;
        let summary = lacuna::run::train::train(&data, &out, &cfg, resume, quiet)?;
        Ok(serde_json::to_string(&summary)?)
    };
    lacuna::run::train::clear_stop_request();
    let worker = std::thread::spawn(move || std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)));
    let mut interrupt = None;
    while !worker.is_finished() {
        if interrupt.is_none() {
            if let Err(e) = py.check_signals() {
                lacuna::run::train::request_stop();
                interrupt = Some(e);
            }
        }
        py.detach(|| std::thread::sleep(std::time::Duration::from_millis(50)));
    }
    let result = worker.join().unwrap_or_else(Err).map_err(|p| anyhow::anyhow!(panic_message(&p)));
    let summary = result.and_then(|r| r).map_err(lacuna_error)?;
    match interrupt {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// `context_ratio=`: a share of the observation, or `"auto"`.
#[derive(FromPyObject)]
enum ContextsArg {
    Ratio(f64),
    Named(String),
}

/// Fills the gaps of `values` with the run in `run`; returns `{"mean", "std"?, "samples"?}`.
#[pyfunction]
#[pyo3(signature = (run, values, mask, observable=None, ensemble=10, steps=1, samples=0, seed=0, last=false, context_ratio=None, shifts=None, other_grid=false, quiet=false))]
#[allow(clippy::too_many_arguments)]
fn impute<'py>(
    py: Python<'py>,
    run: PathBuf,
    values: PyReadonlyArrayDyn<'_, f32>,
    mask: PyReadonlyArrayDyn<'_, u8>,
    observable: Option<PyReadonlyArrayDyn<'_, u8>>,
    ensemble: usize,
    steps: usize,
    samples: usize,
    seed: u64,
    last: bool,
    context_ratio: Option<ContextsArg>,
    shifts: Option<[usize; 2]>,
    other_grid: bool,
    quiet: bool,
) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let context_ratio = match context_ratio {
        None => None,
        Some(ContextsArg::Ratio(r)) => Some(lacuna::run::impute::Contexts::Ratio(r)),
        Some(ContextsArg::Named(s)) => Some(s.parse().map_err(LacunaError::new_err)?),
    };
    let set = field_set(&values, &mask, observable.as_ref()).map_err(|e| LacunaError::new_err(format!("{e:#}")))?;
    let outputs = call(py, move || {
        let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
        let (data, out) = (tmp.path().join("data.npz"), tmp.path().join("completion.npz"));
        set.save(&data)?;
        let opts = lacuna::run::impute::ImputeOptions {
            ensemble,
            steps,
            samples,
            seed,
            last,
            context_ratio,
            shifts,
            other_grid,
            ..Default::default()
        };
        lacuna::run::impute::impute(&run, &data, &out, &opts, quiet)?;
        read_outputs(&out)
    })?;
    outputs_dict(py, outputs)
}

/// Completes `values` with a classical baseline (`nearest`, `biharmonic`, `krige`, ...);
/// returns `{"mean", "std"?}`. The methods that learn read `train_values`/`train_mask`.
#[pyfunction]
#[pyo3(signature = (method, values, mask, observable=None, train_values=None, train_mask=None, rank=32, iters=20, neighbours=100, seed=0, periodic=false))]
#[allow(clippy::too_many_arguments)]
fn baseline<'py>(
    py: Python<'py>,
    method: &str,
    values: PyReadonlyArrayDyn<'_, f32>,
    mask: PyReadonlyArrayDyn<'_, u8>,
    observable: Option<PyReadonlyArrayDyn<'_, u8>>,
    train_values: Option<PyReadonlyArrayDyn<'_, f32>>,
    train_mask: Option<PyReadonlyArrayDyn<'_, u8>>,
    rank: usize,
    iters: usize,
    neighbours: usize,
    seed: u64,
    periodic: bool,
) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    use clap::ValueEnum;
    let bad = |e: anyhow::Error| LacunaError::new_err(format!("{e:#}"));
    let kind = lacuna::baseline::Baseline::from_str(method, true).map_err(|_| {
        let names: Vec<String> = lacuna::baseline::Baseline::value_variants()
            .iter()
            .filter_map(|k| k.to_possible_value())
            .map(|v| v.get_name().to_string())
            .collect();
        LacunaError::new_err(format!("unknown baseline {method:?} (one of {})", names.join(", ")))
    })?;
    let set = field_set(&values, &mask, observable.as_ref()).map_err(bad)?;
    let train = match (&train_values, &train_mask) {
        (Some(v), Some(m)) => Some(field_set(v, m, None).map_err(bad)?),
        (None, None) => None,
        _ => return Err(LacunaError::new_err("give train_values and train_mask together")),
    };
    let outputs = call(py, move || {
        let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
        let (data, out, train_path) =
            (tmp.path().join("data.npz"), tmp.path().join("completion.npz"), tmp.path().join("train.npz"));
        set.save(&data)?;
        if let Some(t) = &train {
            t.save(&train_path)?;
        }
        let opts = lacuna::baseline::BaselineOptions { rank, iters, neighbours, seed, periodic, ..Default::default() };
        lacuna::baseline::run(kind, &data, train.as_ref().map(|_| train_path.as_path()), &out, &opts)?;
        read_outputs(&out)
    })?;
    outputs_dict(py, outputs)
}

/// Scores `mean` (and `std`, when given) against `truth` on the entries `mask` says were
/// missing; returns the metrics of `lacuna eval` as JSON.
#[pyfunction]
#[pyo3(signature = (mean, truth, mask, std=None))]
fn eval(
    py: Python<'_>,
    mean: PyReadonlyArrayDyn<'_, f32>,
    truth: PyReadonlyArrayDyn<'_, f32>,
    mask: PyReadonlyArrayDyn<'_, u8>,
    std: Option<PyReadonlyArrayDyn<'_, f32>>,
) -> PyResult<String> {
    use lacuna::data::npy::Array;
    let bad = |e: anyhow::Error| LacunaError::new_err(format!("{e:#}"));
    let shape = mean.shape().to_vec();
    for (name, s) in [("truth", truth.shape()), ("mask", mask.shape())] {
        if s != shape.as_slice() {
            return Err(LacunaError::new_err(format!("mean has shape {shape:?} but {name} has {s:?}")));
        }
    }
    let slice = |a: &PyReadonlyArrayDyn<'_, f32>| {
        a.as_slice().map(<[f32]>::to_vec).map_err(|e| LacunaError::new_err(e.to_string()))
    };
    let (mean_v, truth_v) = (slice(&mean)?, slice(&truth)?);
    let mask_v = mask.as_slice().map_err(|e| LacunaError::new_err(e.to_string()))?.to_vec();
    let std_v = std.as_ref().map(slice).transpose()?;
    let truth_set = FieldSet::new(
        shape[0],
        match shape[..] {
            [_, c, h, w] => Dims { t: 1, c, h, w },
            [_, t, c, h, w] => Dims { t, c, h, w },
            _ => {
                return Err(LacunaError::new_err(format!(
                    "arrays must be [N, C, H, W] or [N, T, C, H, W], got {shape:?}"
                )))
            }
        },
        truth_v.clone(),
        mask_v.clone(),
        Some(truth_v),
    )
    .map_err(bad)?;
    call(py, move || {
        let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
        let (pred, truth) = (tmp.path().join("pred.npz"), tmp.path().join("truth.npz"));
        truth_set.save(&truth)?;
        let mut arrays = std::collections::BTreeMap::new();
        arrays.insert("mean".to_string(), Array::from_f32(shape.clone(), &mean_v));
        arrays.insert("mask".to_string(), Array::from_bool(shape.clone(), &mask_v));
        if let Some(s) = &std_v {
            arrays.insert("std".to_string(), Array::from_f32(shape.clone(), s));
        }
        lacuna::data::npy::write_npz(&pred, &arrays)?;
        let m = lacuna::run::eval::eval_files(&pred, &truth)?;
        Ok(serde_json::to_string(&m)?)
    })
}

/// The version of the library, as `lacuna --version` prints it.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _lacuna(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("LacunaError", m.py().get_type::<LacunaError>())?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(impute, m)?)?;
    m.add_function(wrap_pyfunction!(baseline, m)?)?;
    m.add_function(wrap_pyfunction!(eval, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    Ok(())
}
