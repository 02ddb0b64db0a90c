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

#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// `n` (the field index, usually time), `y` or `x`.
    pub role: String,
    /// The dimension's name in the source file.
    pub name: String,
    pub values: Vec<f64>,
    pub attrs: Attrs,
    /// The file had no coordinate for this axis: `values` are indices and `name` the role.
    pub indexed: bool,
}

/// Variables (one per channel) and axes (`n`, `y`, `x`) of a field file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GridMeta {
    /// The file it was imported from, as given.
    pub source: Option<String>,
    pub variables: Vec<Variable>,
    pub axes: Vec<Axis>,
}

/// What the `metadata` array holds: everything but the coordinate values, which are arrays.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Record {
    #[serde(default)]
    source: Option<String>,
    variables: Vec<Variable>,
    /// Attributes of the axes, by role.
    #[serde(default)]
    axis_attrs: BTreeMap<String, Attrs>,
}

impl GridMeta {
    /// The arrays that store this record in an `.npz`: `metadata` and the coordinates.
    pub fn arrays(&self) -> Result<BTreeMap<String, Array>> {
        let record = Record {
            source: self.source.clone(),
            variables: self.variables.clone(),
            axis_attrs: self.axes.iter().map(|a| (a.role.clone(), a.attrs.clone())).collect(),
        };
        let mut arrays = BTreeMap::new();
        arrays.insert("metadata".to_string(), Array::from_bytes(&serde_json::to_vec_pretty(&record)?));
        for a in &self.axes {
            arrays.insert(format!("coord_{}_{}", a.role, a.name), Array::from_f64(vec![a.values.len()], &a.values));
        }
        Ok(arrays)
    }

    /// The record of the field file `path` (open as `npz`): its `metadata` and `coord_*`
    /// arrays, each optional. Axes without coordinates get their index under the name `n`, `y`
    /// or `x`; channels without a name are `values` (one channel) or `channel_<c>`. `shape` is
    /// `[n, y, x]`, `channels` the file's channel count.
    pub fn load(npz: &mut Npz, path: &Path, shape: [usize; 3], channels: usize) -> Result<GridMeta> {
        let record: Record = match npz.get("metadata")? {
            Some(a) => serde_json::from_slice(a.bytes())
                .with_context(|| format!("{}: the `metadata` array is not a lacuna metadata record", path.display()))?,
            None => Record::default(),
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
                        attrs: record.axis_attrs.get(*role).cloned().unwrap_or_default(),
                        indexed: false,
                    }
                }
                None => Axis {
                    role: role.to_string(),
                    name: role.to_string(),
                    values: (0..len).map(|i| i as f64).collect(),
                    attrs: Attrs::new(),
                    indexed: true,
                },
            };
            axes.push(axis);
        }
        let variables = if record.variables.len() == channels {
            record.variables
        } else {
            (0..channels)
                .map(|c| Variable {
                    name: if channels == 1 { "values".to_string() } else { format!("channel_{c}") },
                    attrs: Attrs::new(),
                })
                .collect()
        };
        Ok(GridMeta { source: record.source, variables, axes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_the_npz_and_files_without_one_get_plain_names() {
        let dir = tempfile::tempdir().unwrap();
        let attrs: Attrs = [("units".to_string(), "Deg C".to_string())].into();
        let axis = |role: &str, name: &str, values: Vec<f64>, attrs: Attrs| Axis {
            role: role.into(),
            name: name.into(),
            values,
            attrs,
            indexed: false,
        };
        let meta = GridMeta {
            source: Some("sst.nc".into()),
            variables: vec![Variable { name: "SST".into(), attrs: attrs.clone() }],
            axes: vec![
                axis("n", "TIME", vec![1.0, 2.0], Attrs::new()),
                axis("y", "LAT", vec![-1.0, 0.0, 1.0], attrs.clone()),
                axis("x", "LON", vec![10.0, 12.0], Attrs::new()),
            ],
        };
        let path = dir.path().join("m.npz");
        super::super::npy::write_npz(&path, &meta.arrays().unwrap()).unwrap();
        let load = |path: &Path, shape, channels| GridMeta::load(&mut Npz::open(path).unwrap(), path, shape, channels);
        assert_eq!(load(&path, [2, 3, 2], 1).unwrap(), meta);
        // Wrong coordinate length: an error naming the array.
        let err = load(&path, [2, 4, 2], 1).unwrap_err().to_string();
        assert!(err.contains("coord_y_LAT"), "{err}");

        let plain = dir.path().join("p.npz");
        super::super::npy::write_npz(&plain, &BTreeMap::new()).unwrap();
        let m = load(&plain, [1, 2, 3], 2).unwrap();
        assert_eq!(m.variables.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["channel_0", "channel_1"]);
        assert_eq!(m.axes[2].name, "x");
        assert_eq!(m.axes[2].values, [0.0, 1.0, 2.0]);
        assert!(m.axes.iter().all(|a| a.indexed) && !meta.axes[0].indexed);
    }
}
