//! What `data import` keeps of a NetCDF file besides its values, so that outputs can carry it
//! back: each channel's variable name and text attributes (units, long_name, ...), and each
//! axis's dimension name and attributes. The coordinate values themselves stay in the
//! `coord_<role>_<name>` arrays of the `.npz` (role `n`, `y` or `x`); this record goes in a
//! `metadata` array of JSON bytes (in numpy: `json.loads(np.load(f)["metadata"].tobytes())`).

use super::npy::{Array, Npz};
use anyhow::{ensure, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Text attributes copied from the source (CF names: units, long_name, standard_name, ...).
pub type Attrs = BTreeMap<String, String>;

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Variable {
    pub name: String,
    #[serde(default)]
    pub attrs: Attrs,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Axis {
    /// `n` (the field index, usually time), `y` or `x`.
    pub role: String,
    /// The dimension's name in the source file.
    pub name: String,
    pub values: Vec<f64>,
    #[serde(default)]
    pub attrs: Attrs,
}

/// Variables (one per channel) and axes (`n`, `y`, `x`) of a field file.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GridMeta {
    /// The file it was imported from, as given.
    #[serde(default)]
    pub source: Option<String>,
    pub variables: Vec<Variable>,
    /// Coordinates are not serialised here but stored as arrays (see the module doc).
    #[serde(skip)]
    pub axes: Vec<Axis>,
    /// Attribute records of the axes, by role (their values live in the coordinate arrays).
    #[serde(default)]
    axis_attrs: BTreeMap<String, Attrs>,
}

impl GridMeta {
    pub fn new(source: Option<String>, variables: Vec<Variable>, axes: Vec<Axis>) -> GridMeta {
        let axis_attrs = axes.iter().map(|a| (a.role.clone(), a.attrs.clone())).collect();
        GridMeta { source, variables, axes, axis_attrs }
    }

    /// The arrays that store this record in an `.npz`: `metadata` and the coordinates.
    pub fn arrays(&self) -> Result<BTreeMap<String, Array>> {
        let mut arrays = BTreeMap::new();
        let json = serde_json::to_vec_pretty(self)?;
        arrays.insert("metadata".to_string(), Array::from_bytes(&json));
        for a in &self.axes {
            arrays.insert(format!("coord_{}_{}", a.role, a.name), Array::from_f64(vec![a.values.len()], &a.values));
        }
        Ok(arrays)
    }

    /// The record of a field file: its `metadata` and `coord_*` arrays, each optional. Axes
    /// without coordinates get their index under the name `n`, `y` or `x`; channels without a
    /// name are `values` (one channel) or `channel_<c>`. `shape` is `[n, y, x]`, `channels` the
    /// file's channel count.
    pub fn load(path: &Path, shape: [usize; 3], channels: usize) -> Result<GridMeta> {
        let mut npz = Npz::open(path)?;
        let mut meta: GridMeta = match npz.get("metadata")? {
            Some(a) => serde_json::from_slice(a.bytes())
                .with_context(|| format!("{}: the `metadata` array is not a lacuna metadata record", path.display()))?,
            None => GridMeta::default(),
        };
        let names = npz.names();
        let mut axes = Vec::new();
        for (role, len) in ["n", "y", "x"].iter().zip(shape) {
            let prefix = format!("coord_{role}_");
            let found = names.iter().find(|n| n.starts_with(&prefix));
            let axis = match found {
                Some(member) => {
                    let a = npz.get(member)?.context("vanished")?;
                    let values = a.to_f64();
                    ensure!(
                        values.len() == len,
                        "{}: coordinate {member} has {} values, the axis has {len}",
                        path.display(),
                        values.len()
                    );
                    Axis {
                        role: role.to_string(),
                        name: member[prefix.len()..].to_string(),
                        values,
                        attrs: meta.axis_attrs.get(*role).cloned().unwrap_or_default(),
                    }
                }
                None => Axis {
                    role: role.to_string(),
                    name: role.to_string(),
                    values: (0..len).map(|i| i as f64).collect(),
                    attrs: Attrs::new(),
                },
            };
            axes.push(axis);
        }
        meta.axes = axes;
        if meta.variables.len() != channels {
            meta.variables = (0..channels)
                .map(|c| Variable {
                    name: if channels == 1 { "values".to_string() } else { format!("channel_{c}") },
                    attrs: Attrs::new(),
                })
                .collect();
        }
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_the_npz_and_files_without_one_get_plain_names() {
        let dir = tempfile::tempdir().unwrap();
        let attrs: Attrs = [("units".to_string(), "Deg C".to_string())].into();
        let meta = GridMeta::new(
            Some("sst.nc".into()),
            vec![Variable { name: "SST".into(), attrs: attrs.clone() }],
            vec![
                Axis { role: "n".into(), name: "TIME".into(), values: vec![1.0, 2.0], attrs: Attrs::new() },
                Axis { role: "y".into(), name: "LAT".into(), values: vec![-1.0, 0.0, 1.0], attrs: attrs.clone() },
                Axis { role: "x".into(), name: "LON".into(), values: vec![10.0, 12.0], attrs: Attrs::new() },
            ],
        );
        let path = dir.path().join("m.npz");
        super::super::npy::write_npz(&path, &meta.arrays().unwrap()).unwrap();
        assert_eq!(GridMeta::load(&path, [2, 3, 2], 1).unwrap(), meta);
        // Wrong coordinate length: an error naming the array.
        let err = GridMeta::load(&path, [2, 4, 2], 1).unwrap_err().to_string();
        assert!(err.contains("coord_y_LAT"), "{err}");

        let plain = dir.path().join("p.npz");
        super::super::npy::write_npz(&plain, &BTreeMap::new()).unwrap();
        let m = GridMeta::load(&plain, [1, 2, 3], 2).unwrap();
        assert_eq!(m.variables.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["channel_0", "channel_1"]);
        assert_eq!(m.axes[2].name, "x");
        assert_eq!(m.axes[2].values, [0.0, 1.0, 2.0]);
    }
}
