//! Fuzzing the NPZ/NPY reader with mutated and arbitrary bytes: every input must give `Ok` or
//! an error, never a panic or an abort. The default run is short; a longer bounded run:
//!
//! ```sh
//! LACUNA_FUZZ_SECS=300 cargo test --release --test fuzz_npz -- --nocapture
//! ```

use lacuna::data::npy::{write_npz, Array};
use lacuna::data::{FieldSet, Truth};
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

fn mutate(rng: &mut impl Rng, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    match rng.gen_range(0..5) {
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

#[test]
fn npz_reader_survives_mutated_input() {
    let dir = tempfile::tempdir().unwrap();
    let base = valid_npz(dir.path());
    let secs: u64 = std::env::var("LACUNA_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2024);
    let path = dir.path().join("fuzz.npz");
    let (mut runs, mut accepted) = (0usize, 0usize);
    while runs < 3000 || std::time::Instant::now() < deadline {
        let bytes = mutate(&mut rng, &base);
        std::fs::write(&path, &bytes).unwrap();
        let result = std::panic::catch_unwind(|| FieldSet::load(&path, Truth::IfPresent).is_ok());
        match result {
            Ok(ok) => accepted += ok as usize,
            Err(_) => {
                let keep = dir.path().join("crash.npz");
                std::fs::copy(&path, &keep).unwrap();
                panic!("reader panicked on input #{runs} ({} bytes): {:?}", bytes.len(), &bytes[..bytes.len().min(64)]);
            }
        }
        // The raw NPY parser on its own, too.
        let _ = Array::from_npy_bytes(&bytes);
        runs += 1;
    }
    eprintln!("fuzzed {runs} inputs, {accepted} accepted");
}
