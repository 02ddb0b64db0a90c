//! Hostile input, one test per case: no command may destroy a file, crash, or succeed silently
//! with a wrong answer. Commands are written as one line; `{d}` is the test's directory.

mod common;

use common::{walk, Child, Dir};
use lacuna::data::npy::{write_npz, Array};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const TINY: &str = r#"
steps = 8
batch = 4
val_every = 4
checkpoint_every = 4
log_every = 1
[model]
channels = 8
mults = [1, 2]
res_blocks = 1
attention = false
heads = 2
[optim]
warmup = 2
[score]
every = 0
"#;

/// The data of every test here: `Dir::with_data` with this file's settings.
fn data() -> Dir {
    Dir::with_data(TINY, 4, 5)
}

/// With a trained tiny run in `{d}/run`.
fn trained() -> Dir {
    let d = data();
    d.ok("train --data {d}/train.npz --out {d}/run --config {d}/tiny.toml");
    d
}

fn hidden_temporaries(under: &Path) -> Vec<String> {
    walk(under).into_iter().filter(|n| n.ends_with(".tmp") || n.ends_with(".lock")).collect()
}

#[test]
fn impute_baseline_eval_and_plot_cannot_overwrite_their_own_input() {
    let d = trained();
    let before = d.bytes("test.npz");
    let e = d.fails("impute --run {d}/run --data {d}/test.npz --out {d}/test.npz");
    assert!(e.contains("is also an input"), "{e}");
    // Another spelling of the same file.
    let e = d.fails("impute --run {d}/run --data {d}/test.npz --out {d}/run/../test.npz");
    assert!(e.contains("is also an input"), "{e}");
    // The run's own files are inputs too.
    d.fails("impute --run {d}/run --data {d}/test.npz --out {d}/run/model.safetensors");
    d.fails("baseline harmonic --data {d}/test.npz --out {d}/test.npz");
    d.fails("baseline krige --data {d}/test.npz --train {d}/train.npz --out {d}/train.npz");
    d.ok("baseline harmonic --data {d}/test.npz --out {d}/pred.npz");
    let pred = d.bytes("pred.npz");
    d.fails("eval --pred {d}/pred.npz --truth {d}/test.npz --json {d}/test.npz");
    d.fails("eval --pred {d}/pred.npz --truth {d}/test.npz --json {d}/pred.npz");
    d.fails("plot {d}/test.npz --pred {d}/pred.npz --out {d}/test.npz");
    assert_eq!(d.bytes("test.npz"), before, "an input was modified");
    assert_eq!(d.bytes("pred.npz"), pred, "an input was modified");
}

#[test]
fn two_concurrent_trains_into_one_directory_the_second_is_refused_naming_the_holder() {
    let d = data();
    let long = TINY.replace("steps = 8", "steps = 100000");
    std::fs::write(d.p("long.toml"), long).unwrap();
    let mut first = Child(
        d.command("train --data {d}/train.npz --out {d}/run --config {d}/long.toml").spawn().expect("start training"),
    );
    let start = std::time::Instant::now();
    while !d.p("run/checkpoint.safetensors").exists() {
        assert!(start.elapsed().as_secs() < 120, "the first training never checkpointed");
        assert!(first.0.try_wait().unwrap().is_none(), "the first training ended early");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let holder = format!("pid {}", first.0.id());
    let e = d.fails("train --data {d}/train.npz --out {d}/run --config {d}/tiny.toml");
    assert!(e.contains(&holder), "{e}");
    let e = d.fails("train --data {d}/train.npz --out {d}/run --resume");
    assert!(e.contains(&holder), "{e}");
    drop(first);
    let info = std::fs::read_to_string(d.p("run/run.json")).unwrap();
    assert!(info.contains("\"n_train\""), "the run directory was touched by the refused run");
}

#[test]
fn sigterm_removes_temporaries_and_the_lock_and_keeps_the_checkpoint() {
    let d = data();
    let long = TINY.replace("steps = 8", "steps = 100000").replace("checkpoint_every = 4", "checkpoint_every = 2");
    std::fs::write(d.p("long.toml"), long).unwrap();
    let mut child = Child(
        d.command("train --data {d}/train.npz --out {d}/run --config {d}/long.toml")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let start = std::time::Instant::now();
    while !d.p("run/checkpoint.safetensors").exists() {
        assert!(start.elapsed().as_secs() < 120, "no checkpoint was written");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    let status = child.0.wait().unwrap();
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut said).unwrap();
    assert_eq!(status.code(), Some(130), "a terminated run exits with 130: {said}");
    assert!(!said.contains("internal error") && said.contains("interrupted"), "{said}");
    assert!(hidden_temporaries(&d.p("run")).is_empty(), "left: {:?}", hidden_temporaries(&d.p("run")));
    // The checkpoint on disk is whole: the run resumes from it.
    let metrics = std::fs::read_to_string(d.p("run/metrics.jsonl")).unwrap();
    let last = metrics
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?.get("step")?.as_u64())
        .max()
        .unwrap();
    d.ok(&format!("train --data {{d}}/train.npz --out {{d}}/run --resume --steps {}", last + 4));
}

#[test]
fn temporaries_left_by_a_killed_process_are_removed_by_the_next_write() {
    let d = trained();
    // What a SIGKILLed impute leaves: a member scratch file of a process that is gone.
    let stale = d.p(".out.npz.mean.99999999.tmp");
    std::fs::write(&stale, b"partial").unwrap();
    let out = d.ok("impute --run {d}/run --data {d}/test.npz --out {d}/out.npz");
    assert!(!stale.exists(), "the stale temporary is still there");
    assert!(out.contains("99999999"), "its removal was not reported: {out}");
}

#[test]
fn a_failed_train_leaves_no_half_made_run_directory() {
    let d = data();
    let e = d.fails("train --data {d}/train.npz --out {d}/run --config {d}/tiny.toml --partition block --grid 100");
    assert!(e.contains("does not fit 12×12"), "{e}");
    assert!(!d.p("run").exists(), "a half-made run directory was left");
}

#[test]
fn npz_header_declaring_a_huge_shape_over_a_few_bytes_is_an_error_not_an_abort() {
    let d = data();
    // A valid archive whose 'values' header claims 10^9 fields of 64².
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1, 64, 64), }";
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let padded = format!("{header:<117}\n");
    npy.extend((padded.len() as u16).to_le_bytes());
    npy.extend(padded.as_bytes());
    npy.extend([0u8; 64]);
    let file = std::fs::File::create(d.p("huge.npz")).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    zip.start_file("values.npy", zip::write::SimpleFileOptions::default()).unwrap();
    std::io::Write::write_all(&mut zip, &npy).unwrap();
    zip.finish().unwrap();
    let e = d.fails("data info {d}/huge.npz");
    assert!(e.contains("declares shape") && e.contains("truncated or corrupt"), "{e}");
    d.fails("baseline harmonic --data {d}/huge.npz --out {d}/x.npz");
}

#[test]
fn data_gen_with_a_huge_size_and_plot_with_a_huge_zoom_are_errors_not_aborts() {
    let d = data();
    let e = d.fails("data gen grf --size 100000 --n 2 --out {d}/big.npz");
    assert!(e.contains("GiB") && e.contains("--size"), "{e}");
    let e = d.fails("plot {d}/test.npz --zoom 100000 --out {d}/p.png");
    assert!(e.contains("--zoom"), "{e}");
}

#[test]
fn plot_refuses_zoom_zero_more_predicted_fields_than_data_and_a_non_png_name() {
    let d = data();
    d.ok("baseline harmonic --data {d}/train.npz --out {d}/pred24.npz");
    assert!(d.fails("plot {d}/test.npz --zoom 0 --out {d}/p.png").contains("--zoom"));
    let e = d.fails("plot {d}/test.npz --pred {d}/pred24.npz --out {d}/p.png");
    assert!(e.contains("another file"), "{e}");
    let e = d.fails("plot {d}/test.npz --out {d}/p.jpg");
    assert!(e.contains("PNG"), "{e}");
    d.ok("plot {d}/test.npz --out {d}/p.png");
}

#[test]
fn impute_with_a_run_of_another_grid_is_refused_unless_asked_and_other_units_warn() {
    let d = trained();
    d.ok("data gen grf --out {d}/other.npz --n 2 --size 16 --mask pixel:0.3");
    let e = d.fails("impute --run {d}/run --data {d}/other.npz --out {d}/o.npz");
    assert!(e.contains("16×16") && e.contains("12×12") && e.contains("--other-grid"), "{e}");
    d.ok("impute --run {d}/run --data {d}/other.npz --out {d}/o.npz --other-grid");
    // The same fields in other units (°C → a scale 1000× larger).
    d.ok("data gen grf --out {d}/scaled.npz --n 2 --size 12 --mask pixel:0.3 --scale 0.001");
    let out = d.ok("impute --run {d}/run --data {d}/scaled.npz --out {d}/s.npz");
    assert!(out.contains("warning") && out.contains("other units"), "{out}");
}

#[test]
fn block_partition_with_a_grid_finer_than_the_fields_is_refused() {
    let d = data();
    let e = d.fails("train --data {d}/train.npz --out {d}/run --config {d}/tiny.toml --partition block --grid 100");
    assert!(e.contains("100×100 block grid"), "{e}");
}

/// `impute --context-ratio` on a block run: 1 (the whole observation) or 0 (the training
/// rule), nothing in between; on a partition without contexts to thin (MissDiff's context is
/// all of M already) it is refused.
#[test]
fn context_ratio_on_a_block_run_is_whole_or_training_and_refused_elsewhere() {
    let d = data();
    d.ok("train --data {d}/train.npz --out {d}/block --config {d}/tiny.toml --partition block --grid 2");
    d.ok("impute --run {d}/block --data {d}/test.npz --out {d}/whole.npz --context-ratio 1");
    d.ok("impute --run {d}/block --data {d}/test.npz --out {d}/rule.npz --context-ratio 0");
    let e = d.fails("impute --run {d}/block --data {d}/test.npz --out {d}/half.npz --context-ratio 0.5");
    assert!(e.contains("block-partition") && e.contains("0.5"), "{e}");
    d.ok("train --data {d}/train.npz --out {d}/missdiff --config {d}/tiny.toml --partition missdiff");
    let e = d.fails("impute --run {d}/missdiff --data {d}/test.npz --out {d}/m.npz --context-ratio 1");
    assert!(e.contains("pixel, block, prior or intersect") && e.contains("missdiff"), "{e}");
}

#[test]
fn nan_weights_or_zero_std_refuse_imputation_naming_the_file() {
    let d = trained();
    let norm = std::fs::read_to_string(d.p("run/norm.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&norm).unwrap();
    let mut zero = v.clone();
    zero["std"][0] = serde_json::json!(0.0);
    std::fs::write(d.p("run/norm.json"), zero.to_string()).unwrap();
    let e = d.fails("impute --run {d}/run --data {d}/test.npz --out {d}/o.npz");
    assert!(e.contains("norm.json") && e.contains("std"), "{e}");
    std::fs::write(d.p("run/norm.json"), norm).unwrap();
    // NaN weights: every tensor of the kept model replaced by NaN.
    let model = d.p("run/model.safetensors");
    let tensors = tch::Tensor::read_safetensors(&model).unwrap();
    let poisoned: Vec<(String, tch::Tensor)> = tensors.into_iter().map(|(n, t)| (n, t.full_like(f64::NAN))).collect();
    tch::Tensor::write_safetensors(&poisoned, &model).unwrap();
    let e = d.fails("impute --run {d}/run --data {d}/test.npz --out {d}/o.npz");
    assert!(e.contains("non-finite") && e.contains("model.safetensors"), "{e}");
    assert!(!d.p("o.npz").exists(), "NaN gaps were written");
}

#[test]
fn masks_fit_on_fully_observed_data_warns() {
    let d = data();
    d.ok("data gen grf --out {d}/full.npz --n 8 --size 12 --mask pixel:1.0");
    let out = d.ok("masks fit --data {d}/full.npz --out {d}/prior --steps 2 --batch 4 --sample-steps 2");
    assert!(out.contains("warning") && out.contains("every site is observed"), "{out}");
}

#[test]
fn training_the_intersect_partition_on_a_prior_of_fully_observed_masks_warns() {
    let d = data();
    d.ok("data gen grf --out {d}/full.npz --n 8 --size 12 --mask pixel:1.0");
    d.ok("masks fit --data {d}/full.npz --out {d}/prior --steps 30 --batch 4 --sample-steps 2");
    let out =
        d.run("train --data {d}/train.npz --out {d}/r --config {d}/tiny.toml --partition intersect --prior {d}/prior");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning") && err.contains("nearly all of each observation"), "{err}");
}

#[test]
fn negative_grad_clip_or_weight_decay_are_refused_and_a_partial_schedule_table_is_accepted() {
    let d = data();
    for (key, table) in [("grad_clip = -1", "optim"), ("weight_decay = -5", "optim")] {
        let name = format!("bad-{}.toml", key.split(' ').next().unwrap());
        std::fs::write(d.p(&name), format!("{TINY}\n[{table}]\n{key}\n").replace("[optim]\nwarmup = 2\n", "")).unwrap();
        let e = d.fails(&format!("train --data {{d}}/train.npz --out {{d}}/r --config {{d}}/{name}"));
        assert!(e.contains(key.split(' ').next().unwrap()), "{e}");
    }
    std::fs::write(d.p("sched.toml"), format!("{TINY}\n[schedule]\nbeta_max = 15.0\n")).unwrap();
    d.ok("train --data {d}/train.npz --out {d}/r --config {d}/sched.toml");
    let saved = std::fs::read_to_string(d.p("r/config.toml")).unwrap();
    assert!(saved.contains("beta_max = 15.0") && saved.contains("t_eps"), "{saved}");
}

#[test]
fn a_single_one_by_one_field_is_refused() {
    let d = data();
    let mut arrays = BTreeMap::new();
    arrays.insert("values".to_string(), Array::from_f32(vec![1, 1, 1, 1], &[0.5]));
    write_npz(&d.p("one.npz"), &arrays).unwrap();
    let e = d.fails("train --data {d}/one.npz --out {d}/r --config {d}/tiny.toml");
    assert!(e.contains("two observed entries"), "{e}");
    assert!(!d.p("r").exists());
}

#[test]
fn resuming_a_finished_run_says_there_is_nothing_to_do() {
    let d = trained();
    let e = d.fails("train --data {d}/train.npz --out {d}/run --resume");
    assert!(e.contains("finished") && e.contains("--steps"), "{e}");
    assert!(!e.contains("NaN"), "{e}");
}

#[test]
fn a_huge_ensemble_gives_an_estimate_up_front() {
    let d = trained();
    // Not --quiet: the estimate is progress output. Stopped once the estimate is printed.
    let line = "impute --run {d}/run --data {d}/test.npz --out {d}/o.npz --ensemble 100000";
    let mut child = Command::new(env!("CARGO_BIN_EXE_lacuna"))
        .args(line.replace("{d}", &d.root.display().to_string()).split_whitespace())
        .env("OMP_NUM_THREADS", "2")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (mut seen, mut buf) = (String::new(), [0u8; 256]);
    while !seen.contains("network evaluations") {
        match std::io::Read::read(&mut stderr, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("400000 network evaluations"), "{seen}");
}

#[test]
fn unclear_messages_are_one_clear_line() {
    let d = trained();
    // Not a NetCDF file.
    std::fs::write(d.p("junk.nc"), "x".repeat(5000)).unwrap();
    let e = d.fails("data import {d}/junk.nc --var sst");
    assert!(e.contains("not a NetCDF file"), "{e}");
    // A truncated NetCDF file.
    let mut nc = b"CDF\x01".to_vec();
    nc.extend([0u8; 6]);
    std::fs::write(d.p("cut.nc"), nc).unwrap();
    let e = d.fails("data import {d}/cut.nc --var sst");
    assert!(!e.contains("IOErrorKind"), "{e}");
    // A directory as data.
    let e = d.fails("train --data {d}/run --out {d}/r2 --config {d}/tiny.toml");
    assert!(e.contains("is a directory"), "{e}");
    // Resume with other data names the shapes readably.
    d.ok("data gen grf --out {d}/other.npz --n 24 --size 16 --mask pixel:0.3");
    let e = d.fails("train --data {d}/other.npz --out {d}/run --resume --steps 20");
    assert!(!e.contains("Dims {"), "{e}");
    // Resume where there is no run.
    let e = d.fails("train --data {d}/train.npz --out {d}/nothing --resume");
    assert!(e.contains("no run to resume"), "{e}");
    // Impute into a folder that does not exist yet: created, or named plainly.
    d.ok("impute --run {d}/run --data {d}/test.npz --out {d}/new/dir/o.npz");
    assert!(d.p("new/dir/o.npz").exists());
    let e = d.fails("impute --run {d}/run --data {d}/test.npz --out {d}/test.npz/o.npz");
    assert!(!e.contains(".part.") && !e.contains(".mean."), "{e}");
}
