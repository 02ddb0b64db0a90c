//! End-to-end tests of `lacuna train`, `impute`, `eval` and `demo` through the binary: the
//! contract, bad inputs, the promise that training and imputation never read `truth`, resume
//! and reproducibility. Tiny model and data so the suite stays fast on 2 cores.

mod common;

use common::{fixture, read, s, step_losses, tensors, write, Dir, TINY};
use lacuna::data::npy::Array;
use std::path::Path;

#[test]
fn train_impute_eval_end_to_end() {
    let f = fixture();
    f.train("run", "");
    for file in ["config.toml", "norm.json", "run.json", "model.safetensors", "checkpoint.safetensors", "metrics.jsonl"]
    {
        assert!(f.p("run").join(file).exists(), "run lacks {file}");
    }
    let metrics = std::fs::read_to_string(f.p("run/metrics.jsonl")).unwrap();
    assert!(metrics.lines().any(|l| l.contains("val_loss")));

    f.ok("impute --run {d}/run --data {d}/test.npz --out {d}/pred.npz --ensemble 3");
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
    let out = f.ok("eval --pred {d}/pred.npz --truth {d}/test.npz");
    assert!(out.contains("MSE, missing entries"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.p("pred.eval.json")).unwrap()).unwrap();
    assert!(json["mse_missing"].as_f64().unwrap() > 0.0);
    assert!(json["provenance"]["inputs"][s(&f.p("pred.npz"))].is_string(), "{json}");

    // Multi-step sampler with posterior samples.
    f.ok("impute --run {d}/run --data {d}/test.npz --out {d}/samples.npz --ensemble 2 --steps 4 --samples 3");
    assert_eq!(read(&f.p("samples.npz"), "samples").shape, vec![5, 3, 1, 12, 12]);
    assert_eq!(read(&f.p("samples.npz"), "std").shape, vec![5, 1, 12, 12]);

    // The oracle is an imputation file too.
    let out = f.ok("data krige --data {d}/test.npz --out {d}/oracle.npz");
    assert!(out.contains("Bayes MSE"), "{out}");
    f.ok("eval --pred {d}/oracle.npz --truth {d}/test.npz");
}

/// A periodic run that declares a shift symmetry rolls its ensemble members by it (the
/// default) unless `--shifts 0,0`; observations stay pasted back either way, and a
/// zero-padded run refuses shifts.
#[test]
fn impute_rolls_members_by_the_declared_shifts() {
    let f = fixture();
    f.train("run", "--periodic --shift-symmetry 1,1");
    f.ok("impute --run {d}/run --data {d}/test.npz --out {d}/rolled.npz --ensemble 4");
    f.ok("impute --run {d}/run --data {d}/test.npz --out {d}/plain.npz --ensemble 4 --shifts 0,0");
    let (rolled, plain) = (read(&f.p("rolled.npz"), "mean").to_f32(), read(&f.p("plain.npz"), "mean").to_f32());
    let m = read(&f.p("test.npz"), "mask").to_f32();
    let mut largest = 0f32;
    for k in 0..m.len() {
        if m[k] != 0.0 {
            assert_eq!(rolled[k], plain[k], "observation changed");
        } else {
            largest = largest.max((rolled[k] - plain[k]).abs());
        }
    }
    assert!(largest > 1e-6, "rolled members gave the plain ensemble's answer");
    f.train("flat", "");
    let e = f.fails("impute --run {d}/flat --data {d}/test.npz --out {d}/x.npz --shifts 1,1");
    assert!(e.contains("needs a periodic run"), "{e}");
    // shift-reflect rolls by half the row shift: an odd one (1) is refused at inference, an
    // even one trains and imputes, with or without rolled members.
    let e = f.fails("impute --run {d}/run --data {d}/test.npz --out {d}/x.npz --reflections shift-reflect");
    assert!(e.contains("shift-reflect") && e.contains("even row shift"), "{e}");
    let e = f.fails("train --data {d}/train.npz --out {d}/bad --steps 2 --periodic --reflections shift-reflect");
    assert!(e.contains("shift-reflect"), "{e}");
    f.train("sr", "--periodic --shift-symmetry 4,1 --reflections shift-reflect");
    f.ok("impute --run {d}/sr --data {d}/test.npz --out {d}/sr.npz --ensemble 4");
    f.ok("impute --run {d}/sr --data {d}/test.npz --out {d}/sr0.npz --ensemble 4 --shifts 0,0");
}

#[test]
fn train_and_impute_never_read_truth() {
    let f = fixture();
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
    let e = f.fails("data info {d}/poisoned.npz");
    assert!(e.contains("'truth'"), "the poisoned truth should break any reader that touches it: {e}");

    for (data, run, pred) in [("no_truth.npz", "run_a", "pred_a.npz"), ("poisoned.npz", "run_b", "pred_b.npz")] {
        f.ok(&format!("train --data {{d}}/{data} --out {{d}}/{run} --config {{d}}/tiny.toml"));
        f.ok(&format!("impute --run {{d}}/{run} --data {{d}}/{data} --out {{d}}/{pred} --ensemble 2"));
    }
    assert_eq!(read(&f.p("pred_a.npz"), "mean").to_f32(), read(&f.p("pred_b.npz"), "mean").to_f32());
}

#[test]
fn same_seed_gives_identical_runs_and_resume_continues_exactly() {
    let f = fixture();
    f.train("full", "");
    f.train("again", "");
    let a = tensors(&f.p("full/model.safetensors"));
    assert!(a == tensors(&f.p("again/model.safetensors")), "same seed, different weights");

    // Train 6 steps, then resume to 12: the losses after step 6 match the uninterrupted run.
    // A constant learning rate, because the cosine schedule depends on the total step count.
    std::fs::write(f.p("constant.toml"), format!("{TINY}lr_schedule = \"constant\"\n")).unwrap();
    let train_with = |run: &str, steps: &str| {
        f.ok(&format!("train --data {{d}}/train.npz --out {{d}}/{run} --config {{d}}/constant.toml --steps {steps}"));
    };
    train_with("full_const", "12");
    train_with("part", "6");
    f.ok("train --data {d}/train.npz --out {d}/part --resume --steps 12");
    let losses = |run: &str| step_losses(&f.p(run));
    assert_eq!(losses("part").len(), 12);
    assert_eq!(losses("part"), losses("full_const"));
    // The last weights match; the kept (best-scoring) ones may not: a run also scores its last
    // step, so the 6-step run scored step 6, which the uninterrupted run never did.
    assert!(tensors(&f.p("part/model-last.safetensors")) == tensors(&f.p("full_const/model-last.safetensors")));

    f.ok("impute --run {d}/full --data {d}/test.npz --out {d}/p1.npz --seed 3");
    f.ok("impute --run {d}/full --data {d}/test.npz --out {d}/p2.npz --seed 3");
    // The same numbers (the provenance records differ: another output name, another time).
    for name in ["mean", "mask"] {
        assert_eq!(read(&f.p("p1.npz"), name).to_f32(), read(&f.p("p2.npz"), name).to_f32(), "{name}");
    }
    // Chunked processing (bounded memory for large files) gives the same numbers.
    f.ok("impute --run {d}/full --data {d}/test.npz --out {d}/p3.npz --seed 3 --chunk 2");
    // Same random draws per field; only floating-point summation order may differ with the batch size.
    let (a, b) = (read(&f.p("p1.npz"), "mean").to_f32(), read(&f.p("p3.npz"), "mean").to_f32());
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-4, "chunking changed the imputation by {worst}");
}

#[test]
fn bad_inputs_give_one_line_errors() {
    let f = fixture();
    let train =
        |data: &Path| f.fails(&format!("train --data {} --out {{d}}/bad_run --config {{d}}/tiny.toml", data.display()));
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
    f.train("run", "");
    std::fs::remove_file(f.p("run/model.safetensors")).unwrap();
    let impute = || f.fails("impute --run {d}/run --data {d}/test.npz --out {d}/x.npz");
    assert!(impute().contains("model.safetensors: missing"));
    let full = vec![1u8; 5 * 144];
    write(
        &f.p("complete.npz"),
        vec![("values", read(&f.p("test.npz"), "truth")), ("mask", Array::from_bool(vec![5, 1, 12, 12], &full))],
    );
    std::fs::write(f.p("run/model.safetensors"), b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}").unwrap();
    assert!(impute().contains("corrupt or unreadable checkpoint"));
    std::fs::copy(f.p("run/checkpoint.safetensors"), f.p("run/model.safetensors")).unwrap();
    assert!(f.fails("impute --run {d}/run --data {d}/test.npz --out {d}/x.npz").contains("lacks tensor"));
    f.train("run2", "");
    let e = f.fails("impute --run {d}/run2 --data {d}/complete.npz --out {d}/x.npz");
    assert!(e.contains("nothing is missing"), "{e}");
    std::fs::remove_file(f.p("run2/config.toml")).unwrap();
    assert!(f.fails("impute --run {d}/run2 --data {d}/test.npz --out {d}/x.npz").contains("config.toml"));
    assert!(f.fails("impute --run {d}/nope --data {d}/test.npz --out {d}/x.npz").contains("no such run directory"));

    // Training over an existing run, bad flags.
    assert!(f.fails("train --data {d}/train.npz --out {d}/run --config {d}/tiny.toml").contains("--resume"));
    assert!(f.fails("train --data {d}/train.npz --out {d}/r2 --context-ratio 1.5").contains("context ratio"));
    // Declared shifts need periodic fields whose sides they divide, written ROWS,COLS.
    let e = f.fails("train --data {d}/train.npz --out {d}/r2 --shift-symmetry 1,1");
    assert!(e.contains("needs periodic"), "{e}");
    let e = f.fails("train --data {d}/train.npz --out {d}/r2 --periodic --shift-symmetry 5,1");
    assert!(e.contains("does not divide"), "{e}");
    let e = f.fails("train --data {d}/train.npz --out {d}/r2 --periodic --shift-symmetry 4");
    assert!(e.contains("ROWS,COLS"), "{e}");
    assert!(f
        .fails("train --data {d}/train.npz --out {d}/r2 --partition block --context-ratio 0.5")
        .contains("apply to --partition pixel"));
    std::fs::write(f.p("badcfg.toml"), "stepz = 3").unwrap();
    assert!(f.fails("train --data {d}/train.npz --out {d}/r3 --config {d}/badcfg.toml").contains("badcfg.toml"));
    assert!(f
        .fails("impute --run {d}/run --data {d}/test.npz --out {d}/x.npz --samples 2")
        .contains("--samples needs"));
}

#[test]
fn killed_training_resumes_from_its_last_checkpoint() {
    let f = fixture();
    // Many short steps with frequent checkpoints, constant LR so the schedule does not depend on
    // where the run stops; the uninterrupted run is the reference.
    let cfg = TINY
        .replace("steps = 12", "steps = 400")
        .replace("checkpoint_every = 6", "checkpoint_every = 3")
        .replace("val_every = 6", "val_every = 1000");
    std::fs::write(f.p("long.toml"), format!("{cfg}lr_schedule = \"constant\"\n")).unwrap();
    let train = |run: &str| format!("train --data {{d}}/train.npz --out {{d}}/{run} --config {{d}}/long.toml");
    let mut child = f.command(&train("killed")).spawn().unwrap();
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
    let out = f.run("train --data {d}/train.npz --out {d}/killed --resume");
    assert!(out.status.success(), "resume failed: {}", String::from_utf8_lossy(&out.stderr));
    let out = f.run(&train("whole"));
    assert!(out.status.success());
    let losses = |run: &str| step_losses(&f.p(run));
    let (killed, whole) = (losses("killed"), losses("whole"));
    assert_eq!(killed.len(), 400, "every step logged exactly once after the resume");
    assert_eq!(killed, whole, "the resumed run diverged from the uninterrupted one");
    assert!(tensors(&f.p("killed/model.safetensors")) == tensors(&f.p("whole/model.safetensors")));
}

/// The demo prints the classical methods (and, on GRFs, the Bayes oracle) beside the learned
/// model, says how it compares with the best classical one, and writes its panel.
#[test]
fn demo_shows_the_learned_model_next_to_classical_methods_and_writes_a_panel() {
    let dir = Dir::empty();
    let out = dir.root.as_path().join("demo");
    for data in ["grf", "kolmogorov"] {
        let said = dir.ok(&format!(
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
    assert!(dir.fails(&format!("demo --out {} --time-budget soon", out.display())).contains("duration"));
}

/// Provenance: `run.json` names the command, the lacuna version, the time and the SHA-256 of
/// the training file; the weights carry the config and normalisation in their safetensors
/// metadata; an imputation records its run, K, steps, seed and input hashes.
#[test]
fn runs_weights_and_outputs_record_their_provenance() {
    let f = fixture();
    f.train("run", "");
    let sha = |p: &std::path::Path| lacuna::provenance::sha256_file(p).unwrap();
    let info: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f.p("run/run.json")).unwrap()).unwrap();
    let p = &info["provenance"];
    assert_eq!(p["lacuna_version"], env!("CARGO_PKG_VERSION"));
    assert!(p["command"].as_array().unwrap().iter().any(|a| a == "train"), "{p}");
    assert!(p["created_utc"].as_str().unwrap().ends_with('Z'), "{p}");
    assert_eq!(p["inputs"][s(&f.p("train.npz"))], sha(&f.p("train.npz")));

    // The safetensors header: 8 bytes of length, then JSON with `__metadata__`.
    let bytes = std::fs::read(f.p("run/model.safetensors")).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    let meta = &header["__metadata__"];
    let config: toml::Value = toml::from_str(meta["config"].as_str().unwrap()).unwrap();
    assert_eq!(config["steps"].as_integer(), Some(12), "{config}");
    let norm: serde_json::Value = serde_json::from_str(meta["norm"].as_str().unwrap()).unwrap();
    assert!(norm.get("mean").is_some() && norm.get("std").is_some(), "{norm}");
    assert!(meta["run"].as_str().unwrap().contains("provenance"));
    assert!(header.as_object().unwrap().keys().any(|k| k.starts_with("conv_out.")), "plain tensor names");

    f.ok("impute --run {d}/run --data {d}/test.npz --out {d}/pred.npz --ensemble 3 --seed 5");
    let p = common::provenance(&f.p("pred.npz"));
    assert_eq!((p["settings"]["ensemble"].as_u64(), p["settings"]["seed"].as_u64()), (Some(3), Some(5)));
    assert_eq!(p["inputs"][s(&f.p("test.npz"))], sha(&f.p("test.npz")));
    assert_eq!(p["inputs"][s(&f.p("run/model.safetensors"))], sha(&f.p("run/model.safetensors")));

    // Baselines record theirs too.
    f.ok("baseline biharmonic --data {d}/test.npz --out {d}/bh.npz");
    let p = common::provenance(&f.p("bh.npz"));
    assert_eq!(p["settings"]["baseline"], "biharmonic", "{p}");
    assert_eq!(p["inputs"][s(&f.p("test.npz"))], sha(&f.p("test.npz")));

    // So do the data commands' outputs: generated, imported and kriged files.
    f.ok("data krige --data {d}/test.npz --out {d}/krige.npz --length-scale 1.5");
    for (file, key, want) in [("train.npz", "kind", "grf"), ("krige.npz", "smoothness", "1.5")] {
        let p = common::provenance(&f.p(file));
        assert_eq!(p["settings"][key].to_string().trim_matches('"'), want, "{file}: {p}");
        assert!(p["created_utc"].as_str().unwrap().ends_with('Z'));
    }

    // NetCDF outputs carry the record as a global attribute.
    f.ok("impute --run {d}/run --data {d}/test.npz --out {d}/pred.nc --ensemble 3 --seed 5");
    let nc = netcdf3::FileReader::open(f.p("pred.nc")).unwrap();
    let text = nc.data_set().get_global_attr("lacuna_provenance").and_then(|a| a.get_as_string()).unwrap();
    let p: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(p["settings"]["ensemble"].as_u64(), Some(3));
}

/// `--out FILE.nc`: an imported COADS slice comes back with its axes, units and land, and
/// `data import` reads the completion (land is a gap there, every ocean entry is filled).
#[test]
fn netcdf_completions_round_trip_an_imported_file() {
    let f = fixture();
    let nc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/coads_sst_slice.nc");
    let nc = s(&nc);
    f.ok(&format!("data import {nc} --var SST --observable {nc}:ROSE<0 --out {{d}}/coads.npz"));
    let p = common::provenance(&f.p("coads.npz"));
    assert_eq!(p["inputs"][nc], lacuna::provenance::sha256_file(std::path::Path::new(nc)).unwrap(), "{p}");
    f.ok("train --data {d}/coads.npz --out {d}/run --config {d}/tiny.toml");
    for (cmd, out) in [
        ("impute --run {d}/run --data {d}/coads.npz --out {d}/filled.nc --ensemble 2", "filled.nc"),
        ("baseline biharmonic --data {d}/coads.npz --out {d}/bh.nc", "bh.nc"),
    ] {
        f.ok(cmd);
        let mut r = netcdf3::FileReader::open(f.p(out)).unwrap();
        let ds = r.data_set();
        assert_eq!(ds.get_var_attr_as_string("SST", "units").as_deref(), Some("Deg C"), "{out}");
        assert_eq!(ds.get_var_attr_as_string("COADSX", "units").as_deref(), Some("degrees_east"), "{out}");
        let dims: Vec<String> = ds.get_var("SST").unwrap().get_dims().iter().map(|d| d.name()).collect();
        assert_eq!(dims, ["TIME", "COADSY", "COADSX"], "{out}");
        let lat = r.read_var("COADSY").unwrap();
        assert_eq!(lat.get_f64().unwrap()[0], -69.0, "{out}");
        f.ok(&format!("data import {{d}}/{out} --var SST --out {{d}}/back.npz"));
        let back = lacuna::data::FieldSet::load(&f.p("back.npz"), lacuna::data::Truth::Never).unwrap();
        let orig = lacuna::data::FieldSet::load(&f.p("coads.npz"), lacuna::data::Truth::Never).unwrap();
        for k in 0..orig.values.len() {
            assert_eq!(back.mask[k] == 1, orig.is_observable(k), "{out}: entry {k}: land is the only gap");
            if orig.mask[k] == 1 {
                assert_eq!(back.values[k], orig.values[k], "{out}: observations come back unchanged");
            }
        }
    }
    // The data file is an input: never overwritten, whatever the extension.
    f.fails("impute --run {d}/run --data {d}/coads.npz --out {d}/coads.npz");
}
