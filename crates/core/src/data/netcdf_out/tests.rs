use super::*;
use crate::data::netcdf::{import, Observable};
use crate::data::npy::write_npz;
use netcdf3::FileReader;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// SST[time=2, lat=3, lon=4] with units, a fill value and land in the first column.
fn source(dir: &Path) -> PathBuf {
    let path = dir.join("src.nc");
    let mut ds = DataSet::new();
    ds.add_fixed_dim("time", 2).unwrap();
    ds.add_fixed_dim("lat", 3).unwrap();
    ds.add_fixed_dim("lon", 4).unwrap();
    ds.add_var_f32("time", &["time"]).unwrap();
    ds.add_var_f32("lat", &["lat"]).unwrap();
    ds.add_var_attr_string("lat", "units", "degrees_north").unwrap();
    ds.add_var_f32("lon", &["lon"]).unwrap();
    ds.add_var_attr_string("lon", "units", "degrees_east").unwrap();
    ds.add_var_f32("SST", &["time", "lat", "lon"]).unwrap();
    ds.add_var_attr_string("SST", "units", "Deg C").unwrap();
    ds.add_var_attr_string("SST", "long_name", "SEA SURFACE TEMPERATURE").unwrap();
    ds.add_var_attr_f32("SST", "_FillValue", vec![-1e34]).unwrap();
    let mut w = FileWriter::open(&path).unwrap();
    w.set_def(&ds, Version::Classic, 0).unwrap();
    w.write_var_f32("time", &[366.0, 1096.0]).unwrap();
    w.write_var_f32("lat", &[-5.0, -3.0, -1.0]).unwrap();
    w.write_var_f32("lon", &[181.0, 183.0, 185.0, 187.0]).unwrap();
    // Land: column 0; a gap at field 1, site 6.
    let sst: Vec<f32> = (0..24).map(|k| if k % 4 == 0 || k == 12 + 6 { -1e34 } else { 10.0 + k as f32 }).collect();
    w.write_var_f32("SST", &sst).unwrap();
    w.close().unwrap();
    path
}

#[test]
fn an_imported_file_round_trips_with_its_axes_units_and_land() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let im = import(&src, &["SST".into()], &Observable::EverObserved).unwrap();
    let data = dir.path().join("data.npz");
    let mut arrays = im.set.arrays();
    arrays.extend(im.meta.arrays().unwrap());
    write_npz(&data, &arrays).unwrap();

    // A completion as `impute` writes it: the gap filled with 99, std 0.5 on filled entries.
    let mean: Vec<f32> = (0..24)
        .map(|k| {
            if k % 4 == 0 {
                f32::NAN
            } else if k == 18 {
                99.0
            } else {
                10.0 + k as f32
            }
        })
        .collect();
    let std: Vec<f32> = (0..24).map(|k| if k == 18 { 0.5 } else { 0.0 }).collect();
    let shape = vec![2, 1, 3, 4];
    let mut c = BTreeMap::new();
    c.insert("mean".to_string(), Array::from_f32(shape.clone(), &mean));
    c.insert("std".to_string(), Array::from_f32(shape.clone(), &std));
    c.insert("mask".to_string(), Array::from_bool(shape, &im.set.mask));
    c.insert("provenance".to_string(), Array::from_bytes(br#"{"lacuna_version":"0.1.0"}"#));
    let completion = dir.path().join("c.npz");
    write_npz(&completion, &c).unwrap();

    let out = dir.path().join("filled.nc");
    write(&out, &completion, &data).unwrap();

    let mut r = FileReader::open(&out).unwrap();
    let ds = r.data_set();
    assert_eq!(ds.get_var_attr_as_string("SST", "units").as_deref(), Some("Deg C"));
    assert_eq!(ds.get_var_attr_as_string("lat", "units").as_deref(), Some("degrees_north"));
    assert_eq!(ds.get_var_attr_as_string("SST_std", "units").as_deref(), Some("Deg C"));
    assert!(ds.get_global_attr("lacuna_provenance").and_then(|a| a.get_as_string()).unwrap().contains("0.1.0"));
    let dims: Vec<String> = ds.get_var("SST").unwrap().get_dims().iter().map(|d| d.name()).collect();
    assert_eq!(dims, ["time", "lat", "lon"]);
    let lon = r.read_var("lon").unwrap();
    assert_eq!(lon.get_f64().unwrap(), &[181.0, 183.0, 185.0, 187.0]);
    let flags = r.read_var("SST_observed").unwrap();
    assert_eq!(flags.get_i16().unwrap()[18], 0);
    assert_eq!(flags.get_i16().unwrap()[17], 1);
    let land = r.read_var("static_mask").unwrap();
    assert_eq!(land.get_i16().unwrap().iter().filter(|&&f| f == 0).count(), 3, "one land column of 3 rows");

    // Our own importer reads it back: land is a gap, the filled value is there.
    let back = import(&out, &["SST".into()], &Observable::EverObserved).unwrap();
    assert_eq!(back.meta.axes, im.meta.axes);
    assert_eq!(back.meta.variables[0].attrs.get("units").map(String::as_str), Some("Deg C"));
    assert_eq!(back.set.values[18], 99.0);
    assert!((0..24).all(|k| (back.set.mask[k] == 0) == (k % 4 == 0)));
}

#[test]
fn files_without_import_metadata_get_index_axes_and_bad_completions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d.npz");
    let set = crate::data::FieldSet::new(
        1,
        crate::data::Dims { t: 1, c: 2, h: 2, w: 3 },
        vec![1.0; 12],
        vec![1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1],
        None,
    )
    .unwrap();
    set.save(&data).unwrap();
    let mut c = BTreeMap::new();
    c.insert("mean".to_string(), Array::from_f32(vec![1, 2, 2, 3], &[2.0; 12]));
    c.insert("mask".to_string(), Array::from_bool(vec![1, 2, 2, 3], &set.mask));
    let completion = dir.path().join("c.npz");
    write_npz(&completion, &c).unwrap();
    let out = dir.path().join("o.nc");
    write(&out, &completion, &data).unwrap();
    let r = FileReader::open(&out).unwrap();
    let ds = r.data_set();
    assert!(ds.get_var("channel_0").is_some() && ds.get_var("channel_1_observed").is_some());
    assert_eq!(ds.dim_size("x"), Some(3));
    assert!(ds.get_var("static_mask").is_none() && ds.get_var("channel_0_std").is_none());

    // A completion of other fields than the data: an error, not a file.
    c.insert("mean".to_string(), Array::from_f32(vec![1, 2, 3, 2], &[2.0; 12]));
    c.insert("mask".to_string(), Array::from_bool(vec![1, 2, 3, 2], &set.mask));
    write_npz(&completion, &c).unwrap();
    let bad = dir.path().join("bad.nc");
    let err = format!("{:#}", write(&bad, &completion, &data).unwrap_err());
    assert!(err.contains("coord") || err.contains("shape") || err.contains("axis"), "{err}");
    assert!(!bad.exists());
}
