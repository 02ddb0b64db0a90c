//! End-to-end tests through the `lacuna` binary: the CLI contract, bad inputs, the promise
//! that training and imputation never read `truth`, resume and reproducibility.
//! Tiny model and data so the suite stays fast on 2 cores.

use lacuna::data::npy::{write_npz, Array, Npz};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TINY: &str = r#"
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

fn lacuna(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_lacuna"))
        .arg("--quiet")
        .args(args)
        .env("OMP_NUM_THREADS", "2")
        .output()
        .expect("run lacuna");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("internal error"), "lacuna panicked: {stderr}");
    out
}

fn ok(args: &[&str]) -> String {
    let out = lacuna(args);
    assert!(out.status.success(), "lacuna {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Runs a command that must fail; returns its one-line error.
fn fails(args: &[&str]) -> String {
    let out = lacuna(args);
    assert!(!out.status.success(), "lacuna {args:?} should have failed");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.starts_with("error: "), "unexpected error output: {err}");
    err
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::write(root.join("tiny.toml"), TINY).unwrap();
        ok(&[
            "data",
            "gen",
            "grf",
            "--out",
            s(&root.join("train.npz")),
            "--n",
            "24",
            "--size",
            "12",
            "--mask",
            "pixel:0.3",
        ]);
        ok(&[
            "data",
            "gen",
            "grf",
            "--out",
            s(&root.join("test.npz")),
            "--n",
            "5",
            "--size",
            "12",
            "--seed",
            "9",
            "--mask",
            "pixel:0.3",
        ]);
        Fixture { _dir: dir, root }
    }
    fn p(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
    fn train(&self, run: &str, extra: &[&str]) {
        let (data, out, cfg) = (self.p("train.npz"), self.p(run), self.p("tiny.toml"));
        let mut args = vec!["train", "--data", s(&data), "--out", s(&out), "--config", s(&cfg)];
        args.extend_from_slice(extra);
        ok(&args);
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn read(path: &Path, name: &str) -> Array {
    Npz::open(path).unwrap().get(name).unwrap().unwrap_or_else(|| panic!("{} lacks {name}", path.display()))
}

/// (step, loss) of every training-step line of a run's metrics log.
fn step_losses(run: &Path) -> Vec<(u64, String)> {
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

fn write(path: &Path, arrays: Vec<(&str, Array)>) {
    write_npz(path, &arrays.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<BTreeMap<_, _>>()).unwrap();
}

#[test]
fn train_impute_eval_end_to_end() {
    let f = Fixture::new();
    f.train("run", &[]);
    for file in ["config.toml", "norm.json", "run.json", "model.safetensors", "checkpoint.safetensors", "metrics.jsonl"]
    {
        assert!(f.p("run").join(file).exists(), "run lacks {file}");
    }
    let metrics = std::fs::read_to_string(f.p("run/metrics.jsonl")).unwrap();
    assert!(metrics.lines().any(|l| l.contains("val_loss")));

    ok(&[
        "impute",
        "--run",
        s(&f.p("run")),
        "--data",
        s(&f.p("test.npz")),
        "--out",
        s(&f.p("pred.npz")),
        "--ensemble",
        "3",
    ]);
    let mean = read(&f.p("pred.npz"), "mean");
    assert_eq!(mean.shape, vec![5, 1, 12, 12]);
    let (m, v) = (read(&f.p("test.npz"), "mask").to_f32(), read(&f.p("test.npz"), "values").to_f32());
    let mean = mean.to_f32();
    for k in 0..m.len() {
        assert!(mean[k].is_finite());
        if m[k] != 0.0 {
            assert_eq!(mean[k], v[k], "observation not pasted back");
        }
    }
    let out = ok(&["eval", "--pred", s(&f.p("pred.npz")), "--truth", s(&f.p("test.npz"))]);
    assert!(out.contains("MSE, missing entries"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.p("pred.eval.json")).unwrap()).unwrap();
    assert!(json["mse_missing"].as_f64().unwrap() > 0.0);

    // Multi-step sampler with posterior samples.
    ok(&[
        "impute",
        "--run",
        s(&f.p("run")),
        "--data",
        s(&f.p("test.npz")),
        "--out",
        s(&f.p("samples.npz")),
        "--ensemble",
        "2",
        "--steps",
        "4",
        "--samples",
        "3",
    ]);
    assert_eq!(read(&f.p("samples.npz"), "samples").shape, vec![5, 3, 1, 12, 12]);
    assert_eq!(read(&f.p("samples.npz"), "std").shape, vec![5, 1, 12, 12]);

    // The oracle is an imputation file too.
    let out = ok(&["data", "krige", "--data", s(&f.p("test.npz")), "--out", s(&f.p("oracle.npz"))]);
    assert!(out.contains("Bayes MSE"), "{out}");
    ok(&["eval", "--pred", s(&f.p("oracle.npz")), "--truth", s(&f.p("test.npz"))]);
}

#[test]
fn train_and_impute_never_read_truth() {
    let f = Fixture::new();
    let (v, m) = (read(&f.p("train.npz"), "values"), read(&f.p("train.npz"), "mask"));
    // Same observations; one file has no truth, the other a truth member that is not even an array.
    write(&f.p("no_truth.npz"), vec![("values", v.clone()), ("mask", m.clone())]);
    let mut zip = zip::ZipWriter::new(std::fs::File::create(f.p("poisoned.npz")).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    for (name, a) in [("values", &v), ("mask", &m)] {
        zip.start_file(format!("{name}.npy"), opts).unwrap();
        std::io::Write::write_all(&mut zip, &a.to_npy_bytes()).unwrap();
    }
    zip.start_file("truth.npy", opts).unwrap();
    std::io::Write::write_all(&mut zip, b"reading this array is a bug").unwrap();
    zip.finish().unwrap();
    let e = fails(&["data", "info", s(&f.p("poisoned.npz"))]);
    assert!(e.contains("'truth'"), "the poisoned truth should break any reader that touches it: {e}");

    for (data, run, pred) in [("no_truth.npz", "run_a", "pred_a.npz"), ("poisoned.npz", "run_b", "pred_b.npz")] {
        ok(&["train", "--data", s(&f.p(data)), "--out", s(&f.p(run)), "--config", s(&f.p("tiny.toml"))]);
        ok(&["impute", "--run", s(&f.p(run)), "--data", s(&f.p(data)), "--out", s(&f.p(pred)), "--ensemble", "2"]);
    }
    assert_eq!(read(&f.p("pred_a.npz"), "mean").to_f32(), read(&f.p("pred_b.npz"), "mean").to_f32());
}

#[test]
fn same_seed_gives_identical_runs_and_resume_continues_exactly() {
    let f = Fixture::new();
    f.train("full", &[]);
    f.train("again", &[]);
    let a = std::fs::read(f.p("full/model.safetensors")).unwrap();
    assert_eq!(a, std::fs::read(f.p("again/model.safetensors")).unwrap(), "same seed, different weights");

    // Train 6 steps, then resume to 12: the losses after step 6 match the uninterrupted run.
    // A constant learning rate, because the cosine schedule depends on the total step count.
    std::fs::write(f.p("constant.toml"), format!("{TINY}lr_schedule = \"constant\"\n")).unwrap();
    let train_with = |run: &str, steps: &str| {
        ok(&[
            "train",
            "--data",
            s(&f.p("train.npz")),
            "--out",
            s(&f.p(run)),
            "--config",
            s(&f.p("constant.toml")),
            "--steps",
            steps,
        ]);
    };
    train_with("full_const", "12");
    train_with("part", "6");
    ok(&["train", "--data", s(&f.p("train.npz")), "--out", s(&f.p("part")), "--resume", "--steps", "12"]);
    let losses = |run: &str| step_losses(&f.p(run));
    assert_eq!(losses("part").len(), 12);
    assert_eq!(losses("part"), losses("full_const"));
    assert_eq!(
        std::fs::read(f.p("part/model.safetensors")).unwrap(),
        std::fs::read(f.p("full_const/model.safetensors")).unwrap()
    );

    ok(&["impute", "--run", s(&f.p("full")), "--data", s(&f.p("test.npz")), "--out", s(&f.p("p1.npz")), "--seed", "3"]);
    ok(&["impute", "--run", s(&f.p("full")), "--data", s(&f.p("test.npz")), "--out", s(&f.p("p2.npz")), "--seed", "3"]);
    assert_eq!(std::fs::read(f.p("p1.npz")).unwrap(), std::fs::read(f.p("p2.npz")).unwrap());
    // Chunked processing (bounded memory for large files) gives the same numbers.
    ok(&[
        "impute",
        "--run",
        s(&f.p("full")),
        "--data",
        s(&f.p("test.npz")),
        "--out",
        s(&f.p("p3.npz")),
        "--seed",
        "3",
        "--chunk",
        "2",
    ]);
    // Same random draws per field; only floating-point summation order may differ with the batch size.
    let (a, b) = (read(&f.p("p1.npz"), "mean").to_f32(), read(&f.p("p3.npz"), "mean").to_f32());
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-4, "chunking changed the imputation by {worst}");
}

#[test]
fn bad_inputs_give_one_line_errors() {
    let f = Fixture::new();
    let train = |data: &Path| {
        fails(&["train", "--data", s(data), "--out", s(&f.p("bad_run")), "--config", s(&f.p("tiny.toml"))])
    };
    let values = || Array::from_f32(vec![2, 1, 4, 4], &[1.0; 32]);

    write(&f.p("shape.npz"), vec![("values", Array::from_f32(vec![32], &[1.0; 32]))]);
    assert!(train(&f.p("shape.npz")).contains("expected [N, C, H, W]"));

    write(&f.p("mismatch.npz"), vec![("values", values()), ("mask", Array::from_bool(vec![2, 1, 4, 5], &[1; 40]))]);
    assert!(train(&f.p("mismatch.npz")).contains("'mask' has shape"));

    let mut nan = vec![1.0f32; 32];
    nan[3] = f32::NAN;
    write(
        &f.p("nan.npz"),
        vec![
            ("values", Array::from_f32(vec![2, 1, 4, 4], &nan)),
            ("mask", Array::from_bool(vec![2, 1, 4, 4], &[1; 32])),
        ],
    );
    assert!(train(&f.p("nan.npz")).contains("non-finite entries inside the mask"));

    write(&f.p("empty.npz"), vec![("values", values()), ("mask", Array::from_bool(vec![2, 1, 4, 4], &[0; 32]))]);
    assert!(train(&f.p("empty.npz")).contains("observes nothing"));

    std::fs::write(f.p("corrupt.npz"), b"PK\x03\x04 not really a zip").unwrap();
    assert!(train(&f.p("corrupt.npz")).contains("corrupt.npz"));
    assert!(train(&f.p("missing.npz")).contains("no such file"));

    write(&f.p("ints.npz"), vec![("values", Array::from_bool(vec![2, 1, 4, 4], &[1; 32]))]);
    assert!(train(&f.p("ints.npz")).contains("expected a float type"));
    let mut truncated = std::fs::read(f.p("train.npz")).unwrap();
    truncated.truncate(truncated.len() / 2);
    std::fs::write(f.p("truncated.npz"), truncated).unwrap();
    assert!(train(&f.p("truncated.npz")).contains("truncated.npz"));

    // Missing and corrupt checkpoints.
    f.train("run", &[]);
    std::fs::remove_file(f.p("run/model.safetensors")).unwrap();
    let impute =
        || fails(&["impute", "--run", s(&f.p("run")), "--data", s(&f.p("test.npz")), "--out", s(&f.p("x.npz"))]);
    assert!(impute().contains("model.safetensors: missing"));
    let full = vec![1u8; 5 * 144];
    write(
        &f.p("complete.npz"),
        vec![("values", read(&f.p("test.npz"), "truth")), ("mask", Array::from_bool(vec![5, 1, 12, 12], &full))],
    );
    std::fs::write(f.p("run/model.safetensors"), b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}").unwrap();
    assert!(impute().contains("corrupt or unreadable checkpoint"));
    std::fs::copy(f.p("run/checkpoint.safetensors"), f.p("run/model.safetensors")).unwrap();
    assert!(fails(&["impute", "--run", s(&f.p("run")), "--data", s(&f.p("test.npz")), "--out", s(&f.p("x.npz"))])
        .contains("lacks tensor"));
    f.train("run2", &[]);
    let e = fails(&["impute", "--run", s(&f.p("run2")), "--data", s(&f.p("complete.npz")), "--out", s(&f.p("x.npz"))]);
    assert!(e.contains("nothing is missing"), "{e}");
    std::fs::remove_file(f.p("run2/config.toml")).unwrap();
    assert!(fails(&["impute", "--run", s(&f.p("run2")), "--data", s(&f.p("test.npz")), "--out", s(&f.p("x.npz"))])
        .contains("config.toml"));
    assert!(fails(&["impute", "--run", s(&f.p("nope")), "--data", s(&f.p("test.npz")), "--out", s(&f.p("x.npz"))])
        .contains("no such run directory"));

    // Training over an existing run, bad flags.
    assert!(fails(&[
        "train",
        "--data",
        s(&f.p("train.npz")),
        "--out",
        s(&f.p("run")),
        "--config",
        s(&f.p("tiny.toml"))
    ])
    .contains("--resume"));
    assert!(fails(&["train", "--data", s(&f.p("train.npz")), "--out", s(&f.p("r2")), "--context-ratio", "1.5"])
        .contains("context ratio"));
    assert!(fails(&[
        "train",
        "--data",
        s(&f.p("train.npz")),
        "--out",
        s(&f.p("r2")),
        "--partition",
        "block",
        "--context-ratio",
        "0.5"
    ])
    .contains("apply to --partition pixel"));
    std::fs::write(f.p("badcfg.toml"), "stepz = 3").unwrap();
    assert!(fails(&[
        "train",
        "--data",
        s(&f.p("train.npz")),
        "--out",
        s(&f.p("r3")),
        "--config",
        s(&f.p("badcfg.toml"))
    ])
    .contains("badcfg.toml"));
    assert!(fails(&[
        "impute",
        "--run",
        s(&f.p("run")),
        "--data",
        s(&f.p("test.npz")),
        "--out",
        s(&f.p("x.npz")),
        "--samples",
        "2"
    ])
    .contains("--samples needs"));
}

#[test]
fn killed_training_resumes_from_its_last_checkpoint() {
    let f = Fixture::new();
    // Many short steps with frequent checkpoints, constant LR so the schedule does not depend on
    // where the run stops; the uninterrupted run is the reference.
    let cfg = TINY
        .replace("steps = 12", "steps = 400")
        .replace("checkpoint_every = 6", "checkpoint_every = 3")
        .replace("val_every = 6", "val_every = 1000");
    std::fs::write(f.p("long.toml"), format!("{cfg}lr_schedule = \"constant\"\n")).unwrap();
    let args = |run: &str| {
        vec![
            "--quiet".to_string(),
            "train".into(),
            "--data".into(),
            s(&f.p("train.npz")).into(),
            "--out".into(),
            s(&f.p(run)).into(),
            "--config".into(),
            s(&f.p("long.toml")).into(),
        ]
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_lacuna")).args(args("killed")).spawn().unwrap();
    // Wait for a few checkpoints, then SIGKILL mid-run.
    let ckpt = f.p("killed/checkpoint.safetensors");
    let start = std::time::Instant::now();
    loop {
        let lines = std::fs::read_to_string(f.p("killed/metrics.jsonl")).map(|t| t.lines().count()).unwrap_or(0);
        if ckpt.exists() && lines >= 10 {
            break;
        }
        assert!(start.elapsed().as_secs() < 120, "training made no progress");
        assert!(child.try_wait().unwrap().is_none(), "training ended before it could be killed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let out = lacuna(&["train", "--data", s(&f.p("train.npz")), "--out", s(&f.p("killed")), "--resume"]);
    assert!(out.status.success(), "resume failed: {}", String::from_utf8_lossy(&out.stderr));
    let out = lacuna(&args("whole").iter().skip(1).map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success());
    let losses = |run: &str| step_losses(&f.p(run));
    let (killed, whole) = (losses("killed"), losses("whole"));
    assert_eq!(killed.len(), 400, "every step logged exactly once after the resume");
    assert_eq!(killed, whole, "the resumed run diverged from the uninterrupted one");
    assert_eq!(
        std::fs::read(f.p("killed/model.safetensors")).unwrap(),
        std::fs::read(f.p("whole/model.safetensors")).unwrap()
    );
}

/// `ok` for a command written as one line (arguments split on whitespace; paths must not
/// contain spaces, which temporary directories do not).
fn ok_line(line: &str) -> String {
    ok(&line.split_whitespace().collect::<Vec<_>>())
}

#[test]
fn every_data_kind_and_pattern_generates_plots_and_scores() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let cases = [
        ("grf", "--size 12", "cloud:0.3", 1),
        ("kolmogorov", "--size 16 --resolution 32 --spinup 1 --interval 0.5 --per-run 3", "pixel:0.5", 1),
        ("shallow-water", "--size 12", "block:3:4", 3),
        ("advection", "--size 16", "swath:0.4", 1),
        ("advection", "--size 16", "sensors:20", 1),
    ];
    for (i, (kind, opts, mask, channels)) in cases.iter().enumerate() {
        let f = format!("{d}/{kind}{i}.npz");
        let said = ok_line(&format!("data gen {kind} --out {f} --n 7 --seed 3 {opts} --mask {mask}"));
        assert!(said.contains(&format!("wrote 7 {kind} fields {channels}×")), "{said}");
        let truth = read(Path::new(&f), "truth");
        assert_eq!(truth.shape[..2], [7, *channels]);
        let t = truth.to_f32();
        assert!(t.iter().all(|v| v.is_finite()) && t.iter().any(|&v| v != 0.0));
        assert!(ok_line(&format!("data info {f}")).contains("truth: present"));
        // The same seed gives the same file.
        ok_line(&format!("data gen {kind} --out {f}.again.npz --n 7 --seed 3 {opts} --mask {mask}"));
        assert_eq!(read(Path::new(&format!("{f}.again.npz")), "truth").to_f32(), t);
        ok_line(&format!("plot {f} --out {f}.png --n 2"));
        let png = std::fs::read(format!("{f}.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
    let sensors = read(Path::new(&format!("{d}/advection4.npz")), "mask").to_f32();
    assert!(sensors.chunks_exact(256).all(|m| m == &sensors[..256]), "stations are fixed per file");
    assert_eq!(sensors[..256].iter().filter(|&&v| v != 0.0).count(), 20);
}

#[test]
fn oracle_ratio_is_one_for_the_oracle_and_above_for_a_worse_completion() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    ok_line(&format!("data gen grf --out {d}/t.npz --n 6 --size 10 --mask pixel:0.3"));
    let said = ok_line(&format!("data krige --data {d}/t.npz --out {d}/oracle.npz"));
    assert!(said.contains("Bayes MSE on missing entries"), "{said}");
    let oracle = Path::new(&d).join("oracle.npz");
    assert!(Npz::open(&oracle).unwrap().contains("std"));
    let said = ok_line(&format!("eval --pred {d}/oracle.npz --truth {d}/t.npz --oracle {d}/oracle.npz"));
    assert!(said.contains("MSE / oracle MSE:                       1.000"), "{said}");
    // A completion by zeros (the prior mean) is worse than the oracle.
    let mask = read(&oracle, "mask");
    let t = read(&Path::new(&d).join("t.npz"), "truth").to_f32();
    let m = mask.to_f32();
    let z: Vec<f32> = t.iter().zip(&m).map(|(&v, &m)| if m != 0.0 { v } else { 0.0 }).collect();
    write(&Path::new(&d).join("zeros.npz"), vec![("mean", Array::from_f32(mask.shape.clone(), &z)), ("mask", mask)]);
    ok_line(&format!("eval --pred {d}/zeros.npz --truth {d}/t.npz --oracle {d}/oracle.npz --json {d}/z.json"));
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(format!("{d}/z.json")).unwrap()).unwrap();
    assert!(j["ratio_to_oracle"].as_f64().unwrap() > 1.2, "{j}");
    // An oracle of other data is refused.
    ok_line(&format!("data gen grf --out {d}/u.npz --n 6 --size 10 --mask pixel:0.6 --seed 9"));
    ok_line(&format!("data krige --data {d}/u.npz --out {d}/other.npz"));
    let err = fails(&[
        "eval",
        "--pred",
        &format!("{d}/zeros.npz"),
        "--truth",
        &format!("{d}/t.npz"),
        "--oracle",
        &format!("{d}/other.npz"),
    ]);
    assert!(err.contains("same data"), "{err}");
}

#[test]
fn bench_runs_a_suite_writes_tables_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
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
    let said = ok_line(&format!("bench --suite {suite} --out {d}/b"));
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
    ok_line(&format!("bench --suite {suite} --out {d}/b"));
    assert_eq!(std::fs::read_to_string(format!("{d}/b/results.md")).unwrap(), before);
    assert!(!Path::new(&format!("{d}/b/grf-pixel/seed-0/run-pixel")).exists(), "nothing was retrained");
    let err = fails(&["bench", "--suite", "nonsense", "--out", &format!("{d}/c")]);
    assert!(err.contains("unknown suite"), "{err}");
}

#[test]
fn baselines_complete_fields_with_the_impute_contract() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    ok_line(&format!("data gen grf --out {d}/train.npz --n 40 --size 12 --mask pixel:0.4"));
    ok_line(&format!("data gen grf --out {d}/test.npz --n 5 --size 12 --mask pixel:0.4 --seed 5"));
    let values = read(Path::new(&format!("{d}/test.npz")), "values").to_f32();
    let mask = read(Path::new(&format!("{d}/test.npz")), "mask").to_f32();
    for m in ["nearest", "harmonic", "biharmonic", "telea", "krige", "krige-trend", "em-gaussian"] {
        let out = format!("{d}/{m}.npz");
        ok_line(&format!("baseline {m} --data {d}/test.npz --train {d}/train.npz --out {out}"));
        let mean = read(Path::new(&out), "mean").to_f32();
        assert_eq!(mean.len(), values.len());
        for i in 0..mean.len() {
            assert!(mean[i].is_finite());
            if mask[i] != 0.0 {
                assert_eq!(mean[i], values[i], "{m} changed an observation");
            }
        }
        let said = ok_line(&format!("eval --pred {out} --truth {d}/test.npz"));
        assert!(said.contains("MSE, missing entries"));
        if m.starts_with("krige") || m == "em-gaussian" {
            assert!(said.contains("CRPS"), "{m}: {said}");
        }
    }
    let err = fails(&["baseline", "krige", "--data", &format!("{d}/test.npz"), "--out", &format!("{d}/x.npz")]);
    assert!(err.contains("--train"), "{err}");
}

#[test]
fn bench_data_equals_data_gen_output() {
    // The bench caches simulated fields and draws masks itself; the files must be what
    // `lacuna data gen` writes for the same seed, so bench numbers can be reproduced by hand.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let suite = format!("{d}/s.toml");
    std::fs::write(
        &suite,
        "name = \"t\"\nseeds = 1\nsteps = 1\nensemble = 1\n[[cases]]\nname = \"adv\"\nkind = \"advection\"\nsize = 8\nmask = \"block:2:1\"\ntrain = 6\ntest = 3\nmethods = [\"harmonic\"]\n",
    )
    .unwrap();
    ok_line(&format!("bench --suite {suite} --out {d}/b"));
    ok_line(&format!("data gen advection --out {d}/train.npz --n 6 --size 8 --mask block:2:1 --seed 0"));
    ok_line(&format!("data gen advection --out {d}/test.npz --n 3 --size 8 --mask block:2:1 --seed 1000003"));
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
    let tiny = [
        "bench",
        "perf",
        "--size",
        "8",
        "--batch",
        "2",
        "--reps",
        "1",
        "--warmup",
        "0",
        "--ensemble",
        "2",
        "--sampler-steps",
        "2",
    ];
    let out = ok(&tiny);
    assert!(out.contains("max |ours − reference|") && out.contains("ours / reference"), "{out}");
    for task in ["training step", "single-step ensemble", "multi-step sampler"] {
        assert!(out.contains(task), "no {task} row in:\n{out}");
    }
    // A "reference" that computes something else must be refused before anything is timed.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fake.py");
    std::fs::write(
        &fake,
        "import sys, torch\nfrom safetensors.torch import load_file, save_file\na = sys.argv\n\
         x = load_file(a[a.index('--inputs') + 1])['context']\n\
         save_file({'out': torch.zeros_like(x)}, a[a.index('--out') + 1])\n",
    )
    .unwrap();
    let mut args: Vec<&str> = tiny.to_vec();
    args.extend(["--reference", s(&fake)]);
    let e = fails(&args);
    assert!(e.contains("different functions"), "{e}");
}

#[test]
fn never_observable_sites_are_not_filled_not_scored_and_held_out_evaluation_works() {
    // Land as one static mask for every field, then as one per field (tiles of a coast).
    never_observable_sites_case(false);
    never_observable_sites_case(true);
}

fn never_observable_sites_case(per_field: bool) {
    let f = Fixture::new();
    // Land: three columns of every 12×12 field: the first three, or a band that moves with the
    // field (flat index j of a file: field j / 144).
    let land = |j: usize| if per_field { (j % 12 + j / 144) % 12 < 3 } else { j % 12 < 3 };
    for name in ["train", "test"] {
        let p = f.p(&format!("{name}.npz"));
        let n = read(&p, "values").shape[0];
        let static_mask = if per_field {
            Array::from_bool(vec![n, 1, 12, 12], &(0..n * 144).map(|j| u8::from(!land(j))).collect::<Vec<_>>())
        } else {
            Array::from_bool(vec![12, 12], &(0..144).map(|j| u8::from(!land(j))).collect::<Vec<_>>())
        };
        let mut arrays = vec![("values", read(&p, "values")), ("mask", read(&p, "mask")), ("static_mask", static_mask)];
        if name == "test" {
            arrays.push(("truth", read(&p, "truth")));
        }
        write(&f.p(&format!("{name}-land.npz")), arrays);
    }
    ok(&["train", "--data", s(&f.p("train-land.npz")), "--out", s(&f.p("run")), "--config", s(&f.p("tiny.toml"))]);
    ok(&["impute", "--run", s(&f.p("run")), "--data", s(&f.p("test-land.npz")), "--out", s(&f.p("pred.npz"))]);
    ok(&["baseline", "harmonic", "--data", s(&f.p("test-land.npz")), "--out", s(&f.p("harm.npz"))]);
    for pred in ["pred.npz", "harm.npz"] {
        let mean = read(&f.p(pred), "mean").to_f32();
        for (k, v) in mean.iter().enumerate() {
            assert_eq!(v.is_nan(), land(k), "{pred}: entry {k} is {v}");
        }
        let out = ok(&["eval", "--pred", s(&f.p(pred)), "--truth", s(&f.p("test-land.npz"))]);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(f.p(pred).with_extension("eval.json")).unwrap()).unwrap();
        let mask = read(&f.p("test.npz"), "mask").to_f32();
        let expected = (0..mask.len()).filter(|&k| mask[k] == 0.0 && !land(k)).count();
        assert_eq!(json["missing_entries"].as_u64().unwrap() as usize, expected, "{out}");
        assert_eq!(json["entries"].as_u64().unwrap() as usize, 5 * 144 * 3 / 4, "land counted in the score");
    }
    // Held-out evaluation: hide observed entries, complete, score only those.
    let out = ok(&[
        "eval",
        "--holdout",
        "other",
        "--data",
        s(&f.p("test-land.npz")),
        "--run",
        s(&f.p("run")),
        "--out",
        s(&f.p("held")),
    ]);
    assert!(out.contains("PSNR") && out.contains("held out"), "{out}");
    let held_mask = read(&f.p("held/held.npz"), "mask").to_f32();
    let mask = read(&f.p("test.npz"), "mask").to_f32();
    let hidden = (0..mask.len()).filter(|&k| mask[k] != 0.0 && held_mask[k] == 0.0 && !land(k)).count();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.p("held/pred.eval.json")).unwrap()).unwrap();
    assert_eq!(json["missing_entries"].as_u64().unwrap() as usize, hidden, "only hidden observations are scored");
    let e = fails(&["eval", "--holdout", "nonsense", "--data", s(&f.p("test-land.npz")), "--run", s(&f.p("run"))]);
    assert!(e.contains("other"), "{e}");
}

#[test]
fn bench_file_cases_train_and_score_on_held_out_real_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
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
    let said = ok_line(&format!("bench --suite {suite} --out {d}/b"));
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

/// Work II through the CLI: fit a mask prior, draw from it (free and guided), compare, train
/// with the guided prior partition and impute; bad settings give one-line errors.
#[test]
fn mask_prior_fits_draws_compares_and_drives_the_prior_partition() {
    let f = Fixture::new();
    let fit = |data: &str, out: &str| {
        ok(&[
            "masks",
            "fit",
            "--data",
            s(&f.p(data)),
            "--out",
            s(&f.p(out)),
            "--steps",
            "20",
            "--batch",
            "8",
            "--sample-steps",
            "4",
        ])
    };
    let out = fit("train.npz", "prior");
    assert!(out.contains("24 masks"), "{out}");
    let e = fails(&["masks", "fit", "--data", s(&f.p("train.npz")), "--out", s(&f.p("prior"))]);
    assert!(e.contains("already holds"), "{e}");

    ok(&["masks", "sample", "--prior", s(&f.p("prior")), "--n", "5", "--out", s(&f.p("free.npz"))]);
    assert_eq!(read(&f.p("free.npz"), "mask").shape, vec![5, 1, 12, 12]);
    ok(&[
        "masks",
        "sample",
        "--prior",
        s(&f.p("prior")),
        "--n",
        "2",
        "--guide",
        s(&f.p("test.npz")),
        "--out",
        s(&f.p("guided.npz")),
    ]);
    assert_eq!(read(&f.p("guided.npz"), "mask").shape, vec![10, 1, 12, 12]);
    // A masks-only file is accepted as real masks too.
    let out = ok(&["masks", "compare", "--prior", s(&f.p("prior")), "--data", s(&f.p("free.npz")), "--n", "8"]);
    assert!(out.contains("two-point correlation") && out.contains("guided (rho"), "{out}");
    let out =
        ok(&["masks", "compare", "--prior", s(&f.p("prior")), "--data", s(&f.p("train.npz")), "--n", "8", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["comparison"]["real"]["n"].as_u64(), Some(24));

    f.train("run", &["--partition", "prior", "--prior", s(&f.p("prior")), "--rho", "0.3", "--draws", "2"]);
    let cfg = std::fs::read_to_string(f.p("run/config.toml")).unwrap();
    assert!(cfg.contains("kind = \"prior\"") && cfg.contains("rho = 0.3"), "{cfg}");
    assert!(f.p("run/mask-prior/prior.safetensors").exists(), "the run keeps its own copy of the prior");
    std::fs::remove_dir_all(f.p("prior")).unwrap();
    ok(&[
        "impute",
        "--run",
        s(&f.p("run")),
        "--data",
        s(&f.p("test.npz")),
        "--out",
        s(&f.p("pred.npz")),
        "--ensemble",
        "3",
    ]);
    let (mean, mask, values) = (
        read(&f.p("pred.npz"), "mean").to_f32(),
        read(&f.p("test.npz"), "mask").to_f32(),
        read(&f.p("test.npz"), "values").to_f32(),
    );
    assert!(mean.iter().all(|v| v.is_finite()));
    assert!((0..mean.len()).all(|k| mask[k] == 0.0 || mean[k] == values[k]), "observations must be kept");

    let e = fails(&["train", "--data", s(&f.p("train.npz")), "--out", s(&f.p("r2")), "--partition", "prior"]);
    assert!(e.contains("--prior"), "{e}");
    let prior = f.p("run/mask-prior");
    let e = fails(&[
        "train",
        "--data",
        s(&f.p("train.npz")),
        "--out",
        s(&f.p("r3")),
        "--partition",
        "prior",
        "--prior",
        s(&prior),
        "--rho",
        "1",
    ]);
    assert!(e.contains("rho"), "{e}");
    let e = fails(&[
        "train",
        "--data",
        s(&f.p("train.npz")),
        "--out",
        s(&f.p("r4")),
        "--partition",
        "intersect",
        "--prior",
        s(&prior),
        "--rho",
        "0.5",
    ]);
    assert!(e.contains("unguided"), "{e}");
    let e = fails(&["train", "--data", s(&f.p("train.npz")), "--out", s(&f.p("r5")), "--prior", s(&prior)]);
    assert!(e.contains("apply to --partition prior"), "{e}");
    ok(&["data", "gen", "grf", "--out", s(&f.p("small.npz")), "--n", "4", "--size", "8"]);
    let e = fails(&[
        "train",
        "--data",
        s(&f.p("small.npz")),
        "--out",
        s(&f.p("r6")),
        "--partition",
        "intersect",
        "--prior",
        s(&prior),
    ]);
    assert!(e.contains("fitted on 12×12"), "{e}");
}

/// A `file` case with a separate test file (`mask = "given"`): trained on the training file as
/// it is, scored on the test file's missing entries against its truth; the training file's
/// truth is never copied into the bench.
#[test]
fn bench_file_cases_with_a_test_file_score_its_missing_entries() {
    let f = Fixture::new();
    let suite = f.p("suite.toml");
    let body = format!(
        "name = \"given\"\nseeds = 1\nsteps = 2\nensemble = 2\n[[cases]]\nname = \"G\"\nkind = \"file\"\ndata = \"{}\"\ntest_data = \"{}\"\nmask = \"given\"\nmethods = [\"nearest\"]\n",
        s(&f.p("train.npz")),
        s(&f.p("test.npz"))
    );
    std::fs::write(&suite, body).unwrap();
    let said = ok(&["bench", "--suite", s(&suite), "--out", s(&f.p("b"))]);
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
    let e = fails(&["bench", "--suite", s(&suite), "--out", s(&f.p("b2"))]);
    assert!(e.contains("given"), "{e}");
}

/// Issue 8: trajectories `[N, T, C, H, W]` go through the same commands: generation (masks
/// static in time or per frame), training (space-time by default, the snapshot network and
/// per-frame contexts as options), imputation (single- and multi-step), the baselines and
/// evaluation.
#[test]
fn trajectories_train_impute_and_score_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    std::fs::write(format!("{d}/tiny.toml"), TINY).unwrap();
    ok_line(&format!("data gen advection --out {d}/train.npz --n 16 --size 12 --frames 4 --mask pixel:0.3"));
    let said =
        ok_line(&format!("data gen advection --out {d}/test.npz --n 3 --size 12 --frames 4 --mask pixel:0.3 --seed 9"));
    assert!(said.contains("trajectories of 4 frames"), "{said}");
    let test = Path::new(&format!("{d}/test.npz")).to_path_buf();
    assert_eq!(read(&test, "values").shape, vec![3, 4, 1, 12, 12]);
    let (mask, values) = (read(&test, "mask").to_f32(), read(&test, "values").to_f32());
    let frame = 144;
    assert!((0..mask.len()).all(|k| mask[k] == mask[(k / (4 * frame)) * 4 * frame + k % frame]), "sensors moved");
    ok_line(&format!(
        "data gen advection --out {d}/moving.npz --n 2 --size 12 --frames 4 --mask pixel:0.3 --mask-per-frame"
    ));
    let moving = read(Path::new(&format!("{d}/moving.npz")), "mask").to_f32();
    assert!(moving[..frame] != moving[frame..2 * frame], "--mask-per-frame drew one mask for all frames");

    for (run, extra) in [("st", ""), ("snapshot", " --snapshot-model"), ("per-frame", " --context-in-time per-frame")] {
        ok_line(&format!("train --data {d}/train.npz --out {d}/{run} --config {d}/tiny.toml{extra}"));
        let info = std::fs::read_to_string(format!("{d}/{run}/run.json")).unwrap();
        assert!(info.contains("\"t\": 4"), "{info}");
        let weights = std::fs::read(format!("{d}/{run}/model.safetensors")).unwrap();
        let has_frame_attention = weights.windows(7).any(|w| w == b"frames.");
        assert_eq!(has_frame_attention, run != "snapshot", "{run}: frame attention weights");
        ok_line(&format!("impute --run {d}/{run} --data {d}/test.npz --out {d}/{run}.npz --ensemble 3"));
        let mean = read(Path::new(&format!("{d}/{run}.npz")), "mean");
        assert_eq!(mean.shape, vec![3, 4, 1, 12, 12]);
        let mean = mean.to_f32();
        for k in 0..mean.len() {
            assert!(mean[k].is_finite());
            if mask[k] != 0.0 {
                assert_eq!(mean[k], values[k], "{run}: observation not pasted back");
            }
        }
        let said = ok_line(&format!("eval --pred {d}/{run}.npz --truth {d}/test.npz"));
        assert!(said.contains("MSE, missing entries"), "{said}");
    }
    ok_line(&format!(
        "impute --run {d}/st --data {d}/test.npz --out {d}/samples.npz --ensemble 2 --steps 3 --samples 2"
    ));
    assert_eq!(read(Path::new(&format!("{d}/samples.npz")), "samples").shape, vec![3, 2, 4, 1, 12, 12]);
    for m in ["temporal", "telea", "krige"] {
        ok_line(&format!("baseline {m} --data {d}/test.npz --train {d}/train.npz --out {d}/{m}.npz"));
        assert_eq!(read(Path::new(&format!("{d}/{m}.npz")), "mean").shape, vec![3, 4, 1, 12, 12]);
        ok_line(&format!("eval --pred {d}/{m}.npz --truth {d}/test.npz"));
    }

    let err = fails(&["data", "gen", "grf", "--out", &format!("{d}/x.npz"), "--frames", "3"]);
    assert!(err.contains("no dynamics"), "{err}");
    ok_line(&format!("data gen advection --out {d}/snap.npz --n 2 --size 12 --mask pixel:0.3"));
    let err = fails(&[
        "impute",
        "--run",
        &format!("{d}/st"),
        "--data",
        &format!("{d}/snap.npz"),
        "--out",
        &format!("{d}/x.npz"),
    ]);
    assert!(err.contains("trained on 4 frames"), "{err}");
}

/// Trajectory cases of a bench suite: the space-time, snapshot and per-frame variants of a
/// learned method train as separate runs and report as separate rows; the options are refused
/// where they mean nothing.
#[test]
fn bench_trajectory_cases_compare_space_time_and_snapshot_models() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
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
    let said = ok_line(&format!("bench --suite {d}/traj.toml --out {d}/b"));
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
    let err = fails(&["bench", "--suite", &format!("{d}/snap.toml"), "--out", &format!("{d}/c")]);
    assert!(err.contains("trajectories"), "{err}");
}

/// The demo prints the classical methods (and, on GRFs, the Bayes oracle) beside the learned
/// model, says how it compares with the best classical one, and writes its panel.
#[test]
fn demo_shows_the_learned_model_next_to_classical_methods_and_writes_a_panel() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    for data in ["grf", "kolmogorov"] {
        let said = ok_line(&format!(
            "demo --out {} --data {data} --size 16 --train-fields 24 --test-fields 4 --steps 6 --time-budget 60s",
            out.display()
        ));
        for row in [
            "biharmonic (thin-plate)",
            "kriging (fitted covariance)",
            "lacuna, pixel partition",
            "the best classical method",
        ] {
            assert!(said.contains(row), "{data}: no {row:?} in\n{said}");
        }
        assert_eq!(said.contains("Bayes oracle"), data == "grf", "{said}");
        assert!(out.join("panel.png").exists());
    }
    assert!(fails(&["demo", "--out", s(&out), "--time-budget", "soon"]).contains("duration"));
}
