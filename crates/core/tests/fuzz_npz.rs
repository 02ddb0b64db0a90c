//! Fuzzing the NPZ/NPY and NetCDF-3 readers with mutated and arbitrary bytes, and NPZ headers
//! whose shapes lie about the data behind them: every input must give `Ok` or an error, never
//! a panic or an abort (an allocation failure aborts the test process, so it fails too). The
//! default run is short; a longer bounded run (the seconds apply to each reader):
//!
//! ```sh
//! LACUNA_FUZZ_SECS=300 cargo test --release --test fuzz_npz -- --nocapture
//! ```

use lacuna_core::data::npy::{write_npz, Array};
use lacuna_core::data::{FieldSet, Truth};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

fn valid_npz(dir: &std::path::Path) -> Vec<u8> {
    let mut arrays = BTreeMap::new();
    let vals: Vec<f32> = (0..2 * 3 * 4).map(|i| i as f32 * 0.5).collect();
    arrays.insert("values".to_string(), Array::from_f32(vec![2, 1, 3, 4], &vals));
    arrays.insert(
        "mask".to_string(),
        Array::from_bool(vec![2, 1, 3, 4], &(0..24).map(|i| (i % 3 != 0) as u8).collect::<Vec<_>>()),
    );
    arrays.insert("truth".to_string(), Array::from_f32(vec![2, 1, 3, 4], &vals));
    let p = dir.join("seed.npz");
    write_npz(&p, &arrays).unwrap();
    std::fs::read(p).unwrap()
}

/// Rewrites every `'shape': (…)` in the archive with other sizes (often huge), keeping the
/// header length: a lying header over the same few bytes of data.
fn lie_about_shapes(rng: &mut impl Rng, b: &mut [u8]) {
    let key = b"'shape': (";
    let mut i = 0;
    while let Some(at) = b[i..].windows(key.len()).position(|w| w == key) {
        let start = i + at + key.len();
        let end = start + b[start..].iter().position(|&c| c == b')').unwrap_or(0);
        for c in &mut b[start..end] {
            if c.is_ascii_digit() {
                *c = b"0123456789"[if rng.gen_bool(0.7) { 9 } else { rng.gen_range(0..10) }];
            }
        }
        i = end.max(start);
    }
}

fn mutate(rng: &mut impl Rng, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    match rng.gen_range(0..6) {
        5 => lie_about_shapes(rng, &mut b),
        0 => {
            for _ in 0..rng.gen_range(1..8) {
                let i = rng.gen_range(0..b.len());
                b[i] ^= 1 << rng.gen_range(0..8);
            }
        }
        1 => b.truncate(rng.gen_range(0..b.len())),
        2 => {
            let i = rng.gen_range(0..b.len());
            b[i] = rng.gen();
            let j = rng.gen_range(0..b.len());
            b[j] = [0x00, 0xff, 0x7f, 0x80][rng.gen_range(0..4)];
        }
        3 => {
            let i = rng.gen_range(0..b.len());
            let junk: Vec<u8> = (0..rng.gen_range(1..64)).map(|_| rng.gen()).collect();
            b.splice(i..i, junk);
        }
        _ => {
            b = (0..rng.gen_range(0..512)).map(|_| rng.gen()).collect();
            if rng.gen_bool(0.5) && b.len() >= 4 {
                b[..4].copy_from_slice(b"PK\x03\x04");
            }
        }
    }
    b
}

/// Feeds `read` mutations of `base` written to `DIR/fuzz.EXT` (at least 3000, and until
/// `LACUNA_FUZZ_SECS` have passed), 30% of them with `magic` restored at the start; a panic
/// keeps the input as `crash.EXT` and fails. `read` gets the file and the input's number and
/// says whether it was accepted.
fn fuzz(
    what: &str,
    base: &[u8],
    magic: Option<&[u8]>,
    seed: u64,
    dir: &std::path::Path,
    ext: &str,
    read: impl Fn(&std::path::Path, usize) -> bool,
) {
    let secs: u64 = std::env::var("LACUNA_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let path = dir.join(format!("fuzz.{ext}"));
    let (mut runs, mut accepted) = (0usize, 0usize);
    while runs < 3000 || std::time::Instant::now() < deadline {
        let mut bytes = mutate(&mut rng, base);
        // Often restore the format's magic, so mutations reach past the first check.
        if let Some(m) = magic.filter(|m| rng.gen_bool(0.3) && bytes.len() >= m.len()) {
            bytes[..m.len()].copy_from_slice(m);
        }
        std::fs::write(&path, &bytes).unwrap();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(&path, runs))) {
            Ok(ok) => accepted += ok as usize,
            Err(_) => {
                std::fs::copy(&path, dir.join(format!("crash.{ext}"))).unwrap();
                panic!("{what} panicked on input #{runs} ({} bytes): {:?}", bytes.len(), &bytes[..bytes.len().min(64)]);
            }
        }
        runs += 1;
    }
    eprintln!("fuzzed {runs} {what} inputs, {accepted} accepted");
}

#[test]
fn npz_reader_survives_mutated_input() {
    let dir = tempfile::tempdir().unwrap();
    let base = valid_npz(dir.path());
    fuzz("NPZ reader", &base, None, 2024, dir.path(), "npz", |path, _| {
        let ok = FieldSet::load(path, Truth::IfPresent).is_ok();
        // The raw NPY parser on its own, too.
        let _ = Array::from_npy_bytes(&std::fs::read(path).unwrap());
        ok
    });
}

/// A small valid NetCDF-3 file: SST[time=2, lat=3, lon=4] with coordinates and a fill value.
fn valid_nc(dir: &std::path::Path) -> Vec<u8> {
    use netcdf3::{DataSet, FileWriter, Version};
    let path = dir.join("seed.nc");
    let mut ds = DataSet::new();
    ds.set_unlimited_dim("time", 2).unwrap();
    ds.add_fixed_dim("lat", 3).unwrap();
    ds.add_fixed_dim("lon", 4).unwrap();
    ds.add_var_f64("time", &["time"]).unwrap();
    ds.add_var_f32("lat", &["lat"]).unwrap();
    ds.add_var_f32("lon", &["lon"]).unwrap();
    ds.add_var_f32("SST", &["time", "lat", "lon"]).unwrap();
    ds.add_var_attr_f32("SST", "_FillValue", vec![-1e34]).unwrap();
    let mut w = FileWriter::open(&path).unwrap();
    w.set_def(&ds, Version::Classic, 0).unwrap();
    w.write_var_f64("time", &[15.0, 45.0]).unwrap();
    w.write_var_f32("lat", &[-1.0, 0.0, 1.0]).unwrap();
    w.write_var_f32("lon", &[20.0, 22.0, 24.0, 26.0]).unwrap();
    let sst: Vec<f32> = (0..24).map(|i| if i % 5 == 0 { -1e34 } else { i as f32 * 0.25 }).collect();
    w.write_var_f32("SST", &sst).unwrap();
    w.close().unwrap();
    std::fs::read(path).unwrap()
}

#[test]
fn netcdf_reader_survives_mutated_input() {
    let dir = tempfile::tempdir().unwrap();
    let base = valid_nc(dir.path());
    let vars = vec!["SST".to_string()];
    let all = lacuna_core::data::netcdf::Observable::All;
    let ever = lacuna_core::data::netcdf::Observable::EverObserved;
    assert!(
        lacuna_core::data::netcdf::import(&dir.path().join("seed.nc"), &vars, &all).is_ok(),
        "the seed file must import"
    );
    fuzz("NetCDF reader", &base, Some(b"CDF\x01"), 2025, dir.path(), "nc", |path, run| {
        let observable = if run % 2 == 0 { &all } else { &ever };
        lacuna_core::data::netcdf::import(path, &vars, observable).is_ok()
    });
}
