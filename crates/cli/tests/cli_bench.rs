//! End-to-end tests of `lacuna bench` (suites, file cases, trajectories, resume) and
//! `bench perf` through the binary. Tiny model and data so the suite stays fast on 2 cores.

mod common;

use common::{fixture, read, s, Dir};
use lacuna::data::npy::Npz;
use std::path::Path;

#[test]
fn bench_runs_a_suite_writes_tables_and_resumes() {
    let dir = Dir::empty();
    let d = dir.d();
    let suite = format!("{d}/suite.toml");
    std::fs::write(
        &suite,
        r#"
name = "tiny"
seeds = 2
steps = 4
ensemble = 2
[[cases]]
name = "GRF pixel"
kind = "grf"
size = 10
mask = "pixel:0.3"
train = 24
test = 4
methods = ["pixel", "exact-pixel", "oracle", "harmonic", "krige"]
"#,
    )
    .unwrap();
    let said = dir.ok(&format!("bench --suite {suite} --out {d}/b"));
    assert!(said.contains("| oracle |") && said.contains("| exact-pixel |"), "{said}");
    let csv = std::fs::read_to_string(format!("{d}/b/results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 5, "{csv}");
    let row = |m: &str| -> f64 {
        let vals: Vec<f64> = csv
            .lines()
            .filter(|l| l.split(',').nth(1) == Some(m))
            .map(|l| l.split(',').nth(3).unwrap().parse().unwrap())
            .collect();
        vals.iter().sum::<f64>() / vals.len() as f64
    };
    // The exact denoiser through a partition cannot beat the exact posterior mean.
    assert!(row("oracle") <= row("exact-pixel") + 1e-9);
    assert!(std::fs::read(format!("{d}/b/grf-pixel.png")).unwrap().starts_with(b"\x89PNG"));
    // A second run finds every record and recomputes nothing: same table.
    let before = std::fs::read_to_string(format!("{d}/b/results.md")).unwrap();
    std::fs::remove_dir_all(format!("{d}/b/grf-pixel/seed-0/run-pixel")).unwrap();
    dir.ok(&format!("bench --suite {suite} --out {d}/b"));
    assert_eq!(std::fs::read_to_string(format!("{d}/b/results.md")).unwrap(), before);
    assert!(!Path::new(&format!("{d}/b/grf-pixel/seed-0/run-pixel")).exists(), "nothing was retrained");
    let err = dir.fails("bench --suite nonsense --out {d}/c");
    assert!(err.contains("unknown suite"), "{err}");
    let err = dir.fails(&format!("bench --suite {suite} --case nothing-like-it --out {{d}}/c"));
    assert!(err.contains("no case"), "{err}");
}

#[test]
fn bench_data_equals_data_gen_output() {
    // The bench caches simulated fields and draws masks itself; the files must be what
    // `lacuna data gen` writes for the same seed, so bench numbers can be reproduced by hand.
    let dir = Dir::empty();
    let d = dir.d();
    let suite = format!("{d}/s.toml");
    std::fs::write(
        &suite,
        "name = \"t\"\nseeds = 1\nsteps = 1\nensemble = 1\n[[cases]]\nname = \"adv\"\nkind = \"advection\"\nsize = 8\nmask = \"block:2:1\"\ntrain = 6\ntest = 3\nmethods = [\"harmonic\"]\n",
    )
    .unwrap();
    dir.ok(&format!("bench --suite {suite} --out {d}/b"));
    dir.ok(&format!("data gen advection --out {d}/train.npz --n 6 --size 8 --mask block:2:1 --seed 0"));
    dir.ok(&format!("data gen advection --out {d}/test.npz --n 3 --size 8 --mask block:2:1 --seed 1000003"));
    for f in ["train", "test"] {
        for a in ["truth", "mask"] {
            let bench = read(Path::new(&format!("{d}/b/adv/seed-0/{f}.npz")), a).to_f32();
            let gen = read(Path::new(&format!("{d}/{f}.npz")), a).to_f32();
            assert_eq!(bench, gen, "{f} {a}");
        }
    }
}

#[test]
fn perf_compares_with_the_torch_reference_only_when_both_compute_the_same_function() {
    let dir = Dir::empty();
    let tiny = "bench perf --size 8 --batch 2 --reps 1 --warmup 0 --ensemble 2 --sampler-steps 2";
    let out = dir.ok(tiny);
    assert!(out.contains("max |ours − reference|") && out.contains("ours / reference"), "{out}");
    for task in ["training step", "single-step ensemble", "multi-step sampler"] {
        assert!(out.contains(task), "no {task} row in:\n{out}");
    }
    // A "reference" that computes something else must be refused before anything is timed.
    std::fs::write(
        dir.p("fake.py"),
        "import sys, torch\nfrom safetensors.torch import load_file, save_file\na = sys.argv\n\
         x = load_file(a[a.index('--inputs') + 1])['context']\n\
         save_file({'out': torch.zeros_like(x)}, a[a.index('--out') + 1])\n",
    )
    .unwrap();
    let e = dir.fails(&format!("{tiny} --reference {{d}}/fake.py"));
    assert!(e.contains("different functions"), "{e}");
}

#[test]
fn bench_file_cases_train_and_score_on_held_out_real_data() {
    let dir = Dir::empty();
    let d = dir.d();
    let nc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/coads_sst_slice.nc");
    let suite = format!("{d}/suite.toml");
    std::fs::write(
        &suite,
        format!(
            r#"
name = "tiny-real"
seeds = 1
steps = 2
ensemble = 2
[[cases]]
name = "COADS"
kind = "file"
data = "{nc}"
vars = ["SST"]
observable = "{nc}:ROSE<0"
mask = "other"
methods = ["pixel", "nearest"]
"#,
            nc = nc.display()
        ),
    )
    .unwrap();
    let said = dir.ok(&format!("bench --suite {suite} --out {d}/b"));
    assert!(said.contains("| pixel |") && said.contains("| nearest |"), "{said}");
    // Training and test files are the held-out version: nothing hidden is observed in them, and
    // the scored entries are exactly the hidden observations on ocean sites.
    let (train, test) = (format!("{d}/b/coads/seed-0/train.npz"), format!("{d}/b/coads/seed-0/test.npz"));
    let (held, truth) = (read(Path::new(&test), "mask").to_f32(), read(Path::new(&test), "truth").to_f32());
    assert_eq!(read(Path::new(&train), "mask").to_f32(), held);
    let hidden = (0..held.len()).filter(|&k| held[k] == 0.0 && truth[k].is_finite()).count();
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{d}/b/coads/seed-0/nearest.json")).unwrap()).unwrap();
    assert_eq!(record["metrics"]["missing_entries"].as_u64().unwrap() as usize, hidden);
    assert!(hidden > 500, "the next month's occlusion should hide hundreds of entries, hid {hidden}");
}

/// A `file` case with a separate test file (`mask = "given"`): trained on the training file as
/// it is, scored on the test file's missing entries against its truth; the training file's
/// truth is never copied into the bench.
#[test]
fn bench_file_cases_with_a_test_file_score_its_missing_entries() {
    let f = fixture();
    let suite = f.p("suite.toml");
    let body = format!(
        "name = \"given\"\nseeds = 1\nsteps = 2\nensemble = 2\n[[cases]]\nname = \"G\"\nkind = \"file\"\ndata = \"{}\"\ntest_data = \"{}\"\nmask = \"given\"\nmethods = [\"nearest\"]\n",
        s(&f.p("train.npz")),
        s(&f.p("test.npz"))
    );
    std::fs::write(&suite, body).unwrap();
    let said = f.ok(&format!("bench --suite {} --out {{d}}/b", suite.display()));
    assert!(said.contains("| nearest |") && said.contains("against its truth"), "{said}");
    let train = Npz::open(&f.p("b/g/seed-0/train.npz")).unwrap();
    assert!(!train.contains("truth"), "training truth must not reach the bench");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.p("b/g/seed-0/nearest.json")).unwrap()).unwrap();
    let mask = read(&f.p("test.npz"), "mask").to_f32();
    assert_eq!(
        record["metrics"]["missing_entries"].as_u64().unwrap() as usize,
        mask.iter().filter(|&&m| m == 0.0).count()
    );
    std::fs::write(&suite, std::fs::read_to_string(&suite).unwrap().replace("mask = \"given\"", "mask = \"other\""))
        .unwrap();
    let e = f.fails(&format!("bench --suite {} --out {{d}}/b2", suite.display()));
    assert!(e.contains("given"), "{e}");
}

/// Trajectory cases of a bench suite: the space-time, snapshot and per-frame variants of a
/// learned method train as separate runs and report as separate rows; the options are refused
/// where they mean nothing.
#[test]
fn bench_trajectory_cases_compare_space_time_and_snapshot_models() {
    let dir = Dir::empty();
    let d = dir.d();
    let suite = |frames: usize| {
        format!(
            r#"
name = "tiny-traj"
seeds = 1
steps = 2
ensemble = 2
batch = 2
[[cases]]
name = "Adv traj"
kind = "advection"
size = 8
frames = {frames}
stride = 2
mask = "pixel:0.3"
train = 6
test = 2
methods = ["pixel", "pixel:snapshot", "pixel:per-frame", "temporal"]
"#
        )
    };
    std::fs::write(format!("{d}/traj.toml"), suite(3)).unwrap();
    let said = dir.ok(&format!("bench --suite {d}/traj.toml --out {d}/b"));
    for row in ["| pixel |", "| pixel:snapshot |", "| pixel:per-frame |", "| temporal |"] {
        assert!(said.contains(row), "{row} missing: {said}");
    }
    assert!(said.contains("trajectories of 3 frames"), "{said}");
    for run in ["run-pixel", "run-pixel-snapshot", "run-pixel-per-frame"] {
        assert!(Path::new(&format!("{d}/b/adv-traj/seed-0/{run}/model.safetensors")).exists(), "{run}");
    }
    let config = std::fs::read_to_string(format!("{d}/b/adv-traj/seed-0/run-pixel-per-frame/config.toml")).unwrap();
    assert!(config.contains("context_in_time = \"per-frame\""), "{config}");
    std::fs::write(format!("{d}/snap.toml"), suite(1)).unwrap();
    let err = dir.fails("bench --suite {d}/snap.toml --out {d}/c");
    assert!(err.contains("trajectories"), "{err}");
}
