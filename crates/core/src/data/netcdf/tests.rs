use super::*;
use netcdf3::{DataSet, FileWriter, Version};

/// A small NetCDF-3 file: SST[time=3, lat=4, lon=5] with a fill value, land where
/// ROSE ≥ 0, plus a packed int16 variable.
fn write_file(dir: &Path) -> PathBuf {
    let path = dir.join("small.nc");
    let mut ds = DataSet::new();
    ds.set_unlimited_dim("time", 3).unwrap();
    ds.add_fixed_dim("lat", 4).unwrap();
    ds.add_fixed_dim("lon", 5).unwrap();
    ds.add_var_f64("time", &["time"]).unwrap();
    ds.add_var_f32("lat", &["lat"]).unwrap();
    ds.add_var_f32("lon", &["lon"]).unwrap();
    ds.add_var_f32("SST", &["time", "lat", "lon"]).unwrap();
    ds.add_var_attr_f32("SST", "_FillValue", vec![-1e34]).unwrap();
    ds.add_var_i16("PACKED", &["time", "lat", "lon"]).unwrap();
    ds.add_var_attr_f32("PACKED", "scale_factor", vec![0.5]).unwrap();
    ds.add_var_attr_f32("PACKED", "add_offset", vec![10.0]).unwrap();
    // Two values: netcdf3 0.6 pads a lone i16 attribute with non-zero bytes its reader rejects.
    ds.add_var_attr_i16("PACKED", "missing_value", vec![-999, -998]).unwrap();
    ds.add_var_f32("ROSE", &["lat", "lon"]).unwrap();
    let mut w = FileWriter::open(&path).unwrap();
    w.set_def(&ds, Version::Classic, 0).unwrap();
    w.write_var_f64("time", &[15.0, 45.0, 75.0]).unwrap();
    w.write_var_f32("lat", &[-3.0, -1.0, 1.0, 3.0]).unwrap();
    w.write_var_f32("lon", &[20.0, 22.0, 24.0, 26.0, 28.0]).unwrap();
    let mut sst = Vec::new();
    let mut packed = Vec::new();
    for t in 0..3 {
        for k in 0..20 {
            // Land: the first column; gaps: site 7 at t = 1.
            let land = k % 5 == 0;
            let gap = t == 1 && k == 7;
            sst.push(if land || gap { -1e34 } else { (t * 100 + k) as f32 });
            packed.push(if land { -999 } else { (t * 20 + k) as i16 });
        }
    }
    w.write_var_f32("SST", &sst).unwrap();
    w.write_var_i16("PACKED", &packed).unwrap();
    let rose: Vec<f32> = (0..20).map(|k| if k % 5 == 0 { 100.0 } else { -50.0 }).collect();
    w.write_var_f32("ROSE", &rose).unwrap();
    w.close().unwrap();
    path
}

#[test]
fn fill_values_become_gaps_and_axes_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path());
    let im = import(&path, &["SST".into(), "PACKED".into()], &Observable::All).unwrap();
    let s = &im.set;
    assert_eq!((s.n, s.dims), (3, Dims { t: 1, c: 2, h: 4, w: 5 }));
    // [N, C, Y, X]: field 1, channel 0, site 7 is the gap; site 3 observed with 100 + 3.
    assert_eq!(s.mask[2 * 20 + 7], 0);
    assert_eq!(s.values[2 * 20 + 3], 103.0);
    // Packed: 0.5·(20 + 3) + 10 at field 1, channel 1, site 3.
    assert_eq!(s.values[(2 + 1) * 20 + 3], 0.5 * 23.0 + 10.0);
    assert_eq!(s.mask[(2 + 1) * 20 + 5], 0, "missing_value of a packed variable is a gap");
    assert!(s.observable.is_none());
    assert_eq!(im.meta.axes[0].name, "time");
    assert_eq!(im.meta.axes[0].values, vec![15.0, 45.0, 75.0]);
    assert_eq!(im.meta.axes[1].values, vec![-3.0, -1.0, 1.0, 3.0]);
    assert_eq!(im.meta.axes[2].name, "lon");
}

#[test]
fn observable_sites_from_a_condition_or_from_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path());
    let cond: Observable = format!("{}:ROSE<0", path.display()).parse().unwrap();
    let a = import(&path, &["SST".into()], &cond).unwrap();
    let ok = a.set.observable.clone().unwrap();
    assert_eq!(ok.iter().filter(|&&o| o == 0).count(), 4, "the land column");
    assert!((0..20).all(|k| (ok[k] == 0) == (k % 5 == 0)));
    let b = import(&path, &["SST".into()], &Observable::EverObserved).unwrap();
    assert_eq!(b.set.observable, Some(ok), "site 7 is observed at other times, so observable");
    assert!("x.nc:ROSE=0".parse::<Observable>().is_err());
    assert!("nothing".parse::<Observable>().is_err());
}

/// The committed slice of real COADS SST (tests/data/README.md): real gaps, land from relief.
#[test]
fn real_coads_slice_keeps_its_gaps_and_land() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/coads_sst_slice.nc");
    let land: Observable = format!("{}:ROSE<0", path.display()).parse().unwrap();
    let im = import(&path, &["SST".into()], &land).unwrap();
    let s = &im.set;
    assert_eq!((s.n, s.dims), (12, Dims { t: 1, c: 1, h: 30, w: 60 }));
    let ok = s.observable.as_ref().unwrap();
    let ocean = ok.iter().filter(|&&o| o == 1).count();
    assert!((0.05..0.10).contains(&(1.0 - ocean as f64 / 1800.0)), "land share {}", 1.0 - ocean as f64 / 1800.0);
    for t in 0..12 {
        let seen = (0..1800).filter(|&k| s.mask[t * 1800 + k] == 1).count();
        let missing = 1.0 - seen as f64 / ocean as f64;
        assert!((0.05..0.45).contains(&missing), "month {t}: {missing:.3} of the ocean missing");
    }
    let sst: Vec<f32> = (0..s.values.len()).filter(|&k| s.mask[k] == 1).map(|k| s.values[k]).collect();
    assert!(sst.iter().all(|v| (-3.0..35.0).contains(v)), "SST outside −3…35 °C");
    assert_eq!(im.meta.axes[0].name, "TIME");
    assert_eq!(im.meta.axes[1].name, "COADSY");
    assert!(im.meta.axes[1].values[0] < im.meta.axes[1].values[29], "latitudes run south to north");
    // Text attributes travel with the data (units of the field and of its axes).
    assert_eq!(im.meta.variables[0].attrs["units"], "Deg C");
    assert_eq!(im.meta.axes[2].attrs["units"], "degrees_east");
}

/// With the `netcdf4` feature, a NetCDF-4/HDF5 copy of the small file imports exactly as
/// the NetCDF-3 original (fills, packing, axes). `cargo test --features netcdf4`.
#[cfg(feature = "netcdf4")]
#[test]
fn netcdf4_files_import_like_netcdf3() {
    let dir = tempfile::tempdir().unwrap();
    let classic = write_file(dir.path());
    let vars = ["SST".to_string(), "PACKED".to_string()];
    let a = import(&classic, &vars, &Observable::All).unwrap();
    let path = dir.path().join("small4.nc");
    {
        let mut f = netcdf::create(&path).unwrap();
        f.add_unlimited_dimension("time").unwrap();
        f.add_dimension("lat", 4).unwrap();
        f.add_dimension("lon", 5).unwrap();
        let mut reader = FileReader::open(&classic).unwrap();
        let mut put_f32 = |name: &str, dims: &[&str], attrs: &[(&str, f32)]| {
            let data: Vec<f32> = to_f64(reader.read_var(name).unwrap()).iter().map(|&x| x as f32).collect();
            let mut v = f.add_variable::<f32>(name, dims).unwrap();
            for &(k, x) in attrs {
                v.put_attribute(k, x).unwrap();
            }
            v.put_values(&data, ..).unwrap();
        };
        put_f32("time", &["time"], &[]);
        put_f32("lat", &["lat"], &[]);
        put_f32("lon", &["lon"], &[]);
        put_f32("SST", &["time", "lat", "lon"], &[("_FillValue", -1e34)]);
        let packed: Vec<i16> = to_f64(reader.read_var("PACKED").unwrap()).iter().map(|&x| x as i16).collect();
        let mut v = f.add_variable::<i16>("PACKED", &["time", "lat", "lon"]).unwrap();
        v.put_attribute("scale_factor", 0.5f32).unwrap();
        v.put_attribute("add_offset", 10.0f32).unwrap();
        v.put_attribute("missing_value", vec![-999i16, -998]).unwrap();
        v.put_values(&packed, ..).unwrap();
    }
    let b = import(&path, &vars, &Observable::All).unwrap();
    assert_eq!(b.set.mask, a.set.mask);
    assert_eq!(b.set.values, a.set.values);
    assert_eq!(b.meta.axes, a.meta.axes);
}

#[test]
fn clear_errors_for_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path());
    let e = import(&path, &["NOPE".into()], &Observable::All).unwrap_err().to_string();
    assert!(e.contains("no variable") && e.contains("SST"), "{e}");
    let e = import(&path, &["lat".into()], &Observable::All).unwrap_err().to_string();
    assert!(e.contains("at least (Y, X)"), "{e}");
    let e = import(&path, &["SST".into(), "ROSE".into()], &Observable::All).unwrap_err().to_string();
    assert!(e.contains("different grids"), "{e}");
    let junk = dir.path().join("junk.nc");
    std::fs::write(&junk, b"not a netcdf file").unwrap();
    assert!(import(&junk, &["SST".into()], &Observable::All).unwrap_err().to_string().contains("NetCDF-3"));
    // An HDF5 signature: a NetCDF-4 file, named as such (readable with the `netcdf4` build).
    let hdf = dir.path().join("hdf.nc");
    std::fs::write(&hdf, b"\x89HDF\r\n\x1a\nrest of a broken file").unwrap();
    let e = import(&hdf, &["SST".into()], &Observable::All).unwrap_err().to_string();
    assert!(e.contains("NetCDF-4"), "{e}");
}
