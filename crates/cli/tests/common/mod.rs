//! The one helper of the CLI tests: a temporary directory in which commands are written as one
//! line, `{d}` standing for the directory (`d.ok("train --data {d}/train.npz --out {d}/run")`).
#![allow(dead_code)] // each test file uses its own share of it

use lacuna::data::npy::{write_npz, Array, Npz};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The tiny model and schedule of the command tests (`reliability.rs` has its own).
pub const TINY: &str = r#"
steps = 12
batch = 4
val_every = 6
checkpoint_every = 6
log_every = 1
[model]
channels = 8
mults = [1, 2]
res_blocks = 1
attention = true
heads = 2
[optim]
warmup = 2
"#;

/// The data of the command tests' fixtures: [`Dir::with_data`] with [`TINY`], 5 test fields.
pub fn fixture() -> Dir {
    Dir::with_data(TINY, 5, 9)
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub struct Dir {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
}

impl Dir {
    pub fn empty() -> Dir {
        let tmp = tempfile::tempdir().unwrap();
        Dir { root: tmp.path().to_path_buf(), _tmp: tmp }
    }

    /// With `tiny.toml` (the given settings), `train.npz` (24 GRFs of 12², 30% observed) and
    /// `test.npz` (`n_test` fields with truth, drawn with `test_seed`).
    pub fn with_data(tiny: &str, n_test: usize, test_seed: u64) -> Dir {
        let d = Dir::empty();
        std::fs::write(d.p("tiny.toml"), tiny).unwrap();
        d.ok("data gen grf --out {d}/train.npz --n 24 --size 12 --mask pixel:0.3");
        d.ok(&format!("data gen grf --out {{d}}/test.npz --n {n_test} --size 12 --mask pixel:0.3 --seed {test_seed}"));
        d
    }

    pub fn p(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The directory as the commands see it.
    pub fn d(&self) -> String {
        self.root.display().to_string()
    }

    /// `lacuna --quiet LINE` with `{d}` replaced, split at whitespace.
    pub fn command(&self, line: &str) -> Command {
        let line = line.replace("{d}", &self.d());
        let mut c = Command::new(env!("CARGO_BIN_EXE_lacuna"));
        c.arg("--quiet").args(line.split_whitespace()).env("OMP_NUM_THREADS", "2");
        c
    }

    /// Runs a command (any outcome but a crash).
    pub fn run(&self, line: &str) -> Output {
        let out = self.command(line).output().expect("run lacuna");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("internal error") && !stderr.contains("backtrace"),
            "lacuna {line} crashed: {stderr}"
        );
        out
    }

    /// A command that must succeed; returns its stdout and stderr.
    pub fn ok(&self, line: &str) -> String {
        let out = self.run(line);
        assert!(out.status.success(), "lacuna {line} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    }

    /// A command that must fail with a one-line error; returns it.
    pub fn fails(&self, line: &str) -> String {
        let out = self.run(line);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "lacuna {line} should have failed; stderr: {err}");
        // Ours is the last line; clap's usage errors add a hint after theirs.
        let e = err.lines().rfind(|l| l.starts_with("error: ")).unwrap_or("").to_string();
        assert!(!e.is_empty(), "unexpected error output of {line}: {err}");
        assert!(e.len() < 400, "error of {line} is not a short line: {e}");
        e
    }

    pub fn bytes(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.p(name)).unwrap()
    }

    /// `train --data {d}/train.npz --out {d}/RUN --config {d}/tiny.toml EXTRA`.
    pub fn train(&self, run: &str, extra: &str) {
        self.ok(&format!("train --data {{d}}/train.npz --out {{d}}/{run} --config {{d}}/tiny.toml {extra}"));
    }
}

/// A child process killed when the test ends, passed or not (so a failing test does not
/// leave a training running into a deleted directory).
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every file name under `dir`, recursively.
pub fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.file_name().to_string_lossy().to_string());
        }
    }
    out
}

pub fn read(path: &Path, name: &str) -> Array {
    Npz::open(path).unwrap().get(name).unwrap().unwrap_or_else(|| panic!("{} lacks {name}", path.display()))
}

/// The `provenance` record (uint8 JSON bytes) of an output file.
pub fn provenance(path: &Path) -> serde_json::Value {
    serde_json::from_slice(read(path, "provenance").bytes()).unwrap()
}

pub fn write(path: &Path, arrays: Vec<(&str, Array)>) {
    write_npz(path, &arrays.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<BTreeMap<_, _>>()).unwrap();
}

/// (step, loss) of every training-step line of a run's metrics log.
pub fn step_losses(run: &Path) -> Vec<(u64, String)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"loss\""))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["step"].as_u64().unwrap(), v["loss"].to_string())
        })
        .collect()
}

/// The tensors of a weights file by name, as exact f32 values: what "the same weights" means
/// (the file's metadata records when and by which command it was written, so bytes differ).
pub fn tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let mut named: Vec<(String, Vec<f32>)> = tch::Tensor::read_safetensors(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .map(|(n, t)| (n, Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}
