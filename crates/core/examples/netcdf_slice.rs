//! Cuts a small NetCDF-3 slice out of COADS SST and its matching relief, for a committed test
//! file of real data (`tests/data/coads_sst_slice.nc`; public domain, NOAA PMEL ferret-datasets):
//!
//! ```sh
//! bash scripts/get_real_data.sh        # ferret-datasets into ~/.cache/lacuna/real
//! cargo run --release -p lacuna-core --example netcdf_slice -- \
//!     ~/.cache/lacuna/real/ferret/usr/share/ferret-vis/data tests/data/coads_sst_slice.nc 10 30 80 60
//! ```
//!
//! Arguments: the ferret data directory, the output file, first latitude row, rows, first
//! longitude column, columns. The slice keeps SST[TIME, COADSY, COADSX] with its fill value, the
//! relief ROSE of `etopo120.cdf` (same grid) and the coordinate variables, each with the text
//! attributes of its source (units, long_name, ...).

use netcdf3::{DataSet, DataVector, FileReader, FileWriter, Version};
use std::path::PathBuf;

fn f32s(v: DataVector) -> Vec<f32> {
    match v {
        DataVector::F32(v) => v,
        DataVector::F64(v) => v.into_iter().map(|x| x as f32).collect(),
        other => panic!("unexpected type {:?}", other.data_type()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    assert_eq!(args.len(), 6, "usage: netcdf_slice FERRET_DATA_DIR OUT.nc LAT0 NLAT LON0 NLON");
    let dir = PathBuf::from(&args[0]);
    let out = PathBuf::from(&args[1]);
    let n: Vec<usize> = args[2..].iter().map(|a| a.parse().expect("integer")).collect();
    let (lat0, nlat, lon0, nlon) = (n[0], n[1], n[2], n[3]);

    let mut coads = FileReader::open(dir.join("coads_climatology.cdf")).expect("open COADS");
    let (nx, ny) = (coads.data_set().dim_size("COADSX").unwrap(), coads.data_set().dim_size("COADSY").unwrap());
    let sst = f32s(coads.read_var("SST").expect("SST"));
    let time = f32s(coads.read_var("TIME").expect("TIME"));
    let ys = f32s(coads.read_var("COADSY").expect("COADSY"));
    let xs = f32s(coads.read_var("COADSX").expect("COADSX"));
    let mut etopo = FileReader::open(dir.join("etopo120.cdf")).expect("open etopo120");
    let rose = f32s(etopo.read_var("ROSE").expect("ROSE"));
    assert_eq!(rose.len(), nx * ny, "etopo120 is on the COADS grid");
    let nt = time.len();

    let cut = |field: &[f32], t: usize| -> Vec<f32> {
        (0..nlat).flat_map(|j| (0..nlon).map(move |i| field[(t * ny + lat0 + j) * nx + lon0 + i])).collect()
    };
    let sst_slice: Vec<f32> = (0..nt).flat_map(|t| cut(&sst, t)).collect();
    let rose_slice = cut(&rose, 0);

    let mut ds = DataSet::new();
    ds.set_unlimited_dim("TIME", nt).unwrap();
    ds.add_fixed_dim("COADSY", nlat).unwrap();
    ds.add_fixed_dim("COADSX", nlon).unwrap();
    ds.add_var_f32("TIME", &["TIME"]).unwrap();
    ds.add_var_f32("COADSY", &["COADSY"]).unwrap();
    ds.add_var_f32("COADSX", &["COADSX"]).unwrap();
    ds.add_var_f32("SST", &["TIME", "COADSY", "COADSX"]).unwrap();
    ds.add_var_attr_f32("SST", "_FillValue", vec![-1e34]).unwrap();
    ds.add_var_attr_f32("SST", "missing_value", vec![-1e34]).unwrap();
    ds.add_var_f32("ROSE", &["COADSY", "COADSX"]).unwrap();
    for (source, var) in [(&coads, "TIME"), (&coads, "COADSY"), (&coads, "COADSX"), (&coads, "SST"), (&etopo, "ROSE")] {
        for a in source.data_set().get_var_attrs(var).unwrap_or_default() {
            if let Some(text) = a.get_as_string() {
                ds.add_var_attr_string(var, a.name(), text).unwrap();
            }
        }
    }
    let mut w = FileWriter::open(&out).expect("create output");
    w.set_def(&ds, Version::Classic, 0).unwrap();
    w.write_var_f32("TIME", &time).unwrap();
    w.write_var_f32("COADSY", &ys[lat0..lat0 + nlat]).unwrap();
    w.write_var_f32("COADSX", &xs[lon0..lon0 + nlon]).unwrap();
    w.write_var_f32("SST", &sst_slice).unwrap();
    w.write_var_f32("ROSE", &rose_slice).unwrap();
    w.close().unwrap();
    println!("wrote {} ({nt}×{nlat}×{nlon})", out.display());
}
