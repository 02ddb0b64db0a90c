//! Checkpoints: one safetensors file holding weights, EMA weights, Adam moments and the loop
//! state (as JSON bytes), written atomically, so a kill at any moment leaves the previous
//! complete checkpoint in place.

use super::optim::AdamW;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;
use tch::{Kind, Tensor};

/// Loop state beyond the tensors.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoopState {
    pub step: usize,
    pub lr: f64,
    pub best_val: Option<f64>,
    pub plateau_bad: usize,
    /// Best held-out score so far and its step (`model.safetensors` holds those weights).
    #[serde(default)]
    pub best_score: Option<f64>,
    #[serde(default)]
    pub best_step: usize,
    /// Scores since the last improvement (early stopping).
    #[serde(default)]
    pub score_bad: usize,
    /// Seconds spent in optimisation steps, over every session of the run.
    #[serde(default)]
    pub seconds: f64,
}

impl LoopState {
    /// Whether a run at this state is done: `steps` reached or the time budget spent.
    pub fn finished(&self, steps: usize, time_budget: Option<f64>) -> bool {
        self.step >= steps || time_budget.is_some_and(|b| self.seconds >= b)
    }
}

const STATE_KEY: &str = "state.json";

pub fn save(path: &Path, opt: &AdamW, ema: &[(String, Tensor)], state: &LoopState) -> Result<()> {
    let json = serde_json::to_vec(state)?;
    let mut named: Vec<(String, Tensor)> = Vec::new();
    for ((name, p), (m, v)) in opt.params.iter().zip(opt.m.iter().zip(&opt.v)) {
        named.push((format!("param.{name}"), host(p)));
        named.push((format!("adam_m.{name}"), host(m)));
        named.push((format!("adam_v.{name}"), host(v)));
    }
    for (name, e) in ema {
        named.push((format!("ema.{name}"), host(e)));
    }
    named.push(("adam_t".into(), Tensor::from_slice(&[opt.t])));
    named.push((STATE_KEY.into(), Tensor::from_slice(&json)));
    crate::atomic::write_via_path(path, |tmp| Tensor::write_safetensors(&named, tmp).map_err(Into::into))
}

/// A contiguous host copy for writing (safetensors stores row-major bytes; weights may be
/// channels-last).
fn host(t: &Tensor) -> Tensor {
    t.detach().to_device(tch::Device::Cpu).contiguous()
}

/// Writes plain-named inference weights (readable by `safetensors.torch.load_file`).
pub fn save_weights(path: &Path, vars: &[(String, Tensor)]) -> Result<()> {
    save_weights_with(path, vars, &HashMap::new())
}

/// [`save_weights`] with string `metadata` in the file's header (`safetensors.safe_open(path,
/// "pt").metadata()` in Python), as a run's model carries its config and normalisation.
pub fn save_weights_with(path: &Path, vars: &[(String, Tensor)], metadata: &HashMap<String, String>) -> Result<()> {
    let host: Vec<(String, Tensor)> = vars.iter().map(|(n, t)| (n.clone(), host(t))).collect();
    let bytes: Vec<Vec<u8>> = host
        .iter()
        .map(|(_, t)| {
            let mut b = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
            t.f_copy_data_u8(&mut b, t.numel())?;
            Ok(b)
        })
        .collect::<Result<_>>()?;
    let views = host
        .iter()
        .zip(&bytes)
        .map(|((name, t), b)| {
            let shape = t.size().iter().map(|&d| d as usize).collect();
            let view = safetensors::tensor::TensorView::new(dtype_of(name, t.kind())?, shape, b)
                .map_err(|e| anyhow::anyhow!("tensor '{name}': {e:?}"))?;
            Ok((name.clone(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = (!metadata.is_empty()).then(|| metadata.clone());
    crate::atomic::write_via_path(path, |tmp| {
        safetensors::serialize_to_file(views, &metadata, tmp)
            .map_err(|e| anyhow::anyhow!("{}: cannot write weights ({e:?})", tmp.display()))
    })
}

fn dtype_of(name: &str, kind: Kind) -> Result<safetensors::Dtype> {
    use safetensors::Dtype as D;
    Ok(match kind {
        Kind::Float => D::F32,
        Kind::Double => D::F64,
        Kind::Half => D::F16,
        Kind::BFloat16 => D::BF16,
        Kind::Int64 => D::I64,
        Kind::Int => D::I32,
        Kind::Uint8 => D::U8,
        k => bail!("tensor '{name}': no safetensors type for {k:?}"),
    })
}

/// Reads weights by name into `vars`, checking every name and shape.
pub fn load_weights(path: &Path, vars: &[(String, Tensor)]) -> Result<()> {
    let file = read(path)?;
    copy_into(path, &file, "", vars)
}

fn read(path: &Path) -> Result<HashMap<String, Tensor>> {
    if !path.exists() {
        bail!("{}: missing (was the run trained to its first checkpoint?)", path.display());
    }
    let tensors = Tensor::read_safetensors(path)
        .map_err(|e| anyhow::anyhow!("{}: corrupt or unreadable checkpoint ({e})", path.display()))?;
    Ok(tensors.into_iter().collect())
}

fn copy_into(path: &Path, file: &HashMap<String, Tensor>, prefix: &str, vars: &[(String, Tensor)]) -> Result<()> {
    tch::no_grad(|| {
        for (name, var) in vars {
            let key = format!("{prefix}{name}");
            let src = file.get(&key).with_context(|| {
                format!("{}: checkpoint lacks tensor '{key}' (trained with another model config?)", path.display())
            })?;
            if src.size() != var.size() {
                bail!(
                    "{}: tensor '{key}' has shape {:?}, the model needs {:?} (config and checkpoint disagree)",
                    path.display(),
                    src.size(),
                    var.size()
                );
            }
            let mut v = var.shallow_clone();
            v.copy_(src);
        }
        Ok(())
    })
}

/// The loop state of the checkpoint at `path` alone (its step, seconds, scores).
pub fn state(path: &Path) -> Result<LoopState> {
    let file = read(path)?;
    loop_state(path, &file)
}

fn loop_state(path: &Path, file: &HashMap<String, Tensor>) -> Result<LoopState> {
    let bytes = file.get(STATE_KEY).with_context(|| format!("{}: checkpoint lacks its loop state", path.display()))?;
    let bytes: Vec<u8> = Vec::try_from(&bytes.to_kind(Kind::Uint8))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: corrupt loop state", path.display()))
}

/// Restores optimizer, EMA and loop state from a checkpoint.
pub fn load(path: &Path, opt: &mut AdamW, ema: &[(String, Tensor)]) -> Result<LoopState> {
    let file = read(path)?;
    copy_into(path, &file, "param.", &opt.params)?;
    let m: Vec<(String, Tensor)> =
        opt.params.iter().map(|(n, _)| n.clone()).zip(opt.m.iter().map(|t| t.shallow_clone())).collect();
    copy_into(path, &file, "adam_m.", &m)?;
    let v: Vec<(String, Tensor)> =
        opt.params.iter().map(|(n, _)| n.clone()).zip(opt.v.iter().map(|t| t.shallow_clone())).collect();
    copy_into(path, &file, "adam_v.", &v)?;
    copy_into(path, &file, "ema.", ema)?;
    opt.t =
        file.get("adam_t").with_context(|| format!("{}: checkpoint lacks 'adam_t'", path.display()))?.int64_value(&[0]);
    loop_state(path, &file)
}
