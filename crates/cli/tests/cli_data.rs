//! End-to-end tests of `lacuna data`, `baseline`, `plot`, `masks` and trajectories through the
//! binary. Tiny model and data so the suite stays fast on 2 cores.

mod common;

use common::{fixture, read, s, write, Dir, TINY};
use lacuna::data::npy::{Array, Npz};
use std::path::Path;

#[test]
fn every_data_kind_and_pattern_generates_plots_and_scores() {
    let dir = Dir::empty();
    let d = dir.d();
    let cases = [
        ("grf", "--size 12", "cloud:0.3", 1),
        ("kolmogorov", "--size 16 --resolution 32 --spinup 1 --interval 0.5 --per-run 3", "pixel:0.5", 1),
        ("shallow-water", "--size 12", "block:3:4", 3),
        ("advection", "--size 16", "swath:0.4", 1),
        ("advection", "--size 16", "sensors:20", 1),
    ];
    for (i, (kind, opts, mask, channels)) in cases.iter().enumerate() {
        let f = format!("{d}/{kind}{i}.npz");
        let said = dir.ok(&format!("data gen {kind} --out {f} --n 7 --seed 3 {opts} --mask {mask}"));
        assert!(said.contains(&format!("wrote 7 {kind} fields {channels}×")), "{said}");
        let truth = read(Path::new(&f), "truth");
        assert_eq!(truth.shape[..2], [7, *channels]);
        let t = truth.to_f32();
        assert!(t.iter().all(|v| v.is_finite()) && t.iter().any(|&v| v != 0.0));
        assert!(dir.ok(&format!("data info {f}")).contains("truth: present"));
        // The same seed gives the same file.
        dir.ok(&format!("data gen {kind} --out {f}.again.npz --n 7 --seed 3 {opts} --mask {mask}"));
        assert_eq!(read(Path::new(&format!("{f}.again.npz")), "truth").to_f32(), t);
        dir.ok(&format!("plot {f} --out {f}.png --n 2"));
        let png = std::fs::read(format!("{f}.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
    let sensors = read(Path::new(&format!("{d}/advection4.npz")), "mask").to_f32();
    assert!(sensors.chunks_exact(256).all(|m| m == &sensors[..256]), "stations are fixed per file");
    assert_eq!(sensors[..256].iter().filter(|&&v| v != 0.0).count(), 20);
}

#[test]
fn oracle_ratio_is_one_for_the_oracle_and_above_for_a_worse_completion() {
    let dir = Dir::empty();
    let d = dir.d();
    dir.ok(&format!("data gen grf --out {d}/t.npz --n 6 --size 10 --mask pixel:0.3"));
    let said = dir.ok(&format!("data krige --data {d}/t.npz --out {d}/oracle.npz"));
    assert!(said.contains("Bayes MSE on missing entries"), "{said}");
    let oracle = Path::new(&d).join("oracle.npz");
    assert!(Npz::open(&oracle).unwrap().contains("std"));
    let said = dir.ok(&format!("eval --pred {d}/oracle.npz --truth {d}/t.npz --oracle {d}/oracle.npz"));
    assert!(said.contains("MSE / oracle MSE:                       1.000"), "{said}");
    // A completion by zeros (the prior mean) is worse than the oracle.
    let mask = read(&oracle, "mask");
    let t = read(&Path::new(&d).join("t.npz"), "truth").to_f32();
    let m = mask.to_f32();
    let z: Vec<f32> = t.iter().zip(&m).map(|(&v, &m)| if m != 0.0 { v } else { 0.0 }).collect();
    write(&Path::new(&d).join("zeros.npz"), vec![("mean", Array::from_f32(mask.shape.clone(), &z)), ("mask", mask)]);
    dir.ok(&format!("eval --pred {d}/zeros.npz --truth {d}/t.npz --oracle {d}/oracle.npz --json {d}/z.json"));
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(format!("{d}/z.json")).unwrap()).unwrap();
    assert!(j["ratio_to_oracle"].as_f64().unwrap() > 1.2, "{j}");
    // An oracle of other data is refused.
    dir.ok(&format!("data gen grf --out {d}/u.npz --n 6 --size 10 --mask pixel:0.6 --seed 9"));
    dir.ok(&format!("data krige --data {d}/u.npz --out {d}/other.npz"));
    let err = dir.fails("eval --pred {d}/zeros.npz --truth {d}/t.npz --oracle {d}/other.npz");
    assert!(err.contains("same data"), "{err}");
}

#[test]
fn baselines_complete_fields_with_the_impute_contract() {
    let dir = Dir::empty();
    let d = dir.d();
    dir.ok(&format!("data gen grf --out {d}/train.npz --n 40 --size 12 --mask pixel:0.4"));
    dir.ok(&format!("data gen grf --out {d}/test.npz --n 5 --size 12 --mask pixel:0.4 --seed 5"));
    let values = read(Path::new(&format!("{d}/test.npz")), "values").to_f32();
    let mask = read(Path::new(&format!("{d}/test.npz")), "mask").to_f32();
    for m in ["nearest", "harmonic", "biharmonic", "telea", "krige", "krige-trend", "em-gaussian"] {
        let out = format!("{d}/{m}.npz");
        dir.ok(&format!("baseline {m} --data {d}/test.npz --train {d}/train.npz --out {out}"));
        let mean = read(Path::new(&out), "mean").to_f32();
        assert_eq!(mean.len(), values.len());
        for i in 0..mean.len() {
            assert!(mean[i].is_finite());
            if mask[i] != 0.0 {
                assert_eq!(mean[i], values[i], "{m} changed an observation");
            }
        }
        let said = dir.ok(&format!("eval --pred {out} --truth {d}/test.npz"));
        assert!(said.contains("MSE, missing entries"));
        if m.starts_with("krige") || m == "em-gaussian" {
            assert!(said.contains("CRPS"), "{m}: {said}");
        }
    }
    let err = dir.fails("baseline krige --data {d}/test.npz --out {d}/x.npz");
    assert!(err.contains("--train"), "{err}");
}

#[test]
fn never_observable_sites_are_not_filled_not_scored_and_held_out_evaluation_works() {
    // Land as one static mask for every field, then as one per field (tiles of a coast).
    never_observable_sites_case(false);
    never_observable_sites_case(true);
}

fn never_observable_sites_case(per_field: bool) {
    let f = fixture();
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
    f.ok("train --data {d}/train-land.npz --out {d}/run --config {d}/tiny.toml");
    f.ok("impute --run {d}/run --data {d}/test-land.npz --out {d}/pred.npz");
    f.ok("baseline harmonic --data {d}/test-land.npz --out {d}/harm.npz");
    for pred in ["pred.npz", "harm.npz"] {
        let mean = read(&f.p(pred), "mean").to_f32();
        for (k, v) in mean.iter().enumerate() {
            assert_eq!(v.is_nan(), land(k), "{pred}: entry {k} is {v}");
        }
        let out = f.ok(&format!("eval --pred {{d}}/{pred} --truth {{d}}/test-land.npz"));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(f.p(pred).with_extension("eval.json")).unwrap()).unwrap();
        let mask = read(&f.p("test.npz"), "mask").to_f32();
        let expected = (0..mask.len()).filter(|&k| mask[k] == 0.0 && !land(k)).count();
        assert_eq!(json["missing_entries"].as_u64().unwrap() as usize, expected, "{out}");
        assert_eq!(json["entries"].as_u64().unwrap() as usize, 5 * 144 * 3 / 4, "land counted in the score");
    }
    // Held-out evaluation: hide observed entries, complete, score only those.
    let out = f.ok("eval --holdout other --data {d}/test-land.npz --run {d}/run --out {d}/held");
    assert!(out.contains("PSNR") && out.contains("held out"), "{out}");
    let held_mask = read(&f.p("held/held.npz"), "mask").to_f32();
    let mask = read(&f.p("test.npz"), "mask").to_f32();
    let hidden = (0..mask.len()).filter(|&k| mask[k] != 0.0 && held_mask[k] == 0.0 && !land(k)).count();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.p("held/pred.eval.json")).unwrap()).unwrap();
    assert_eq!(json["missing_entries"].as_u64().unwrap() as usize, hidden, "only hidden observations are scored");
    let e = f.fails("eval --holdout nonsense --data {d}/test-land.npz --run {d}/run");
    assert!(e.contains("other"), "{e}");
}

/// Work II through the CLI: fit a mask prior, draw from it (free and guided), compare, train
/// with the guided prior partition and impute; bad settings give one-line errors.
#[test]
fn mask_prior_fits_draws_compares_and_drives_the_prior_partition() {
    let f = fixture();
    let fit = |data: &str, out: &str| {
        f.ok(&format!("masks fit --data {{d}}/{data} --out {{d}}/{out} --steps 20 --batch 8 --sample-steps 4"))
    };
    let out = fit("train.npz", "prior");
    assert!(out.contains("24 masks"), "{out}");
    let e = f.fails("masks fit --data {d}/train.npz --out {d}/prior");
    assert!(e.contains("already holds"), "{e}");

    f.ok("masks sample --prior {d}/prior --n 5 --out {d}/free.npz");
    assert_eq!(read(&f.p("free.npz"), "mask").shape, vec![5, 1, 12, 12]);
    f.ok("masks sample --prior {d}/prior --n 2 --guide {d}/test.npz --out {d}/guided.npz");
    assert_eq!(read(&f.p("guided.npz"), "mask").shape, vec![10, 1, 12, 12]);
    // A masks-only file is accepted as real masks too.
    let out = f.ok("masks compare --prior {d}/prior --data {d}/free.npz --n 8");
    assert!(out.contains("two-point correlation") && out.contains("guided (rho"), "{out}");
    let out = f.ok("masks compare --prior {d}/prior --data {d}/train.npz --n 8 --json");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["comparison"]["real"]["n"].as_u64(), Some(24));
    // 30% of the sites observed in the masks and in the prior's draws: an unguided context
    // keeps about 30% of them, and the report says what the default rule makes of it.
    let share = json["unguided_share"].as_f64().unwrap();
    assert!((0.1..0.6).contains(&share), "{json}");
    assert_eq!(json["default_guides"].as_bool(), Some(share < lacuna::method::partition::DEFAULT_GUIDE_BELOW));
    // --draws-only compares the draws and leaves out the partitions' probe.
    let out = f.ok("masks compare --prior {d}/prior --data {d}/train.npz --n 8 --json --draws-only");
    let only: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(only["comparison"], json["comparison"], "the same draws are compared");
    assert!(only.get("unguided_share").is_none() && only.get("guided_query").is_none(), "{only}");
    let out = f.ok("masks compare --prior {d}/prior --data {d}/train.npz --n 8 --draws-only");
    assert!(out.contains("two-point correlation") && !out.contains("guided (rho"), "{out}");
    // The guidance loss is a choice of sample and compare too.
    let out = f.ok("masks compare --prior {d}/prior --data {d}/train.npz --n 8 --json --guidance-loss anchors");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["guidance_loss"], "anchors");
    f.ok("masks sample --prior {d}/prior --n 2 --guide {d}/test.npz --guidance-loss anchors-missing --out {d}/g2.npz");
    let p = common::provenance(&f.p("g2.npz"));
    assert_eq!(p["settings"]["guidance_loss"], "anchors-missing", "{p}");
    let p: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.p("prior/provenance.json")).unwrap()).unwrap();
    assert!(p["inputs"][s(&f.p("train.npz"))].is_string(), "{p}");

    f.train("run", "--partition prior --prior {d}/prior --rho 0.3 --draws 2 --guide-below 1");
    let cfg = std::fs::read_to_string(f.p("run/config.toml")).unwrap();
    assert!(cfg.contains("kind = \"prior\"") && cfg.contains("rho = 0.3"), "{cfg}");
    assert!(f.p("run/mask-prior/prior.safetensors").exists(), "the run keeps its own copy of the prior");
    // Each field's guided draws are used in turn: 48 samples of 22 fields visit each at least
    // twice, so every field saw both of its 2 guided contexts (logged at the end of the run).
    let metrics = std::fs::read_to_string(f.p("run/metrics.jsonl")).unwrap();
    let seen: serde_json::Value =
        serde_json::from_str(metrics.lines().rfind(|l| l.contains("guided_contexts_min")).unwrap()).unwrap();
    assert_eq!(seen["guided_contexts_min"].as_u64(), Some(2), "{seen}");
    // By default a mask visited 16 times or more sees 16 distinct guided contexts: 100 steps
    // of batch 4 over 22 fields visit each at least 16 times.
    f.train("anchored", "--partition prior --prior {d}/prior --guidance-loss anchors --steps 100 --guide-below 1");
    let cfg = std::fs::read_to_string(f.p("anchored/config.toml")).unwrap();
    assert!(cfg.contains("guidance_loss = \"anchors\"") && cfg.contains("draws = 16"), "{cfg}");
    let metrics = std::fs::read_to_string(f.p("anchored/metrics.jsonl")).unwrap();
    let seen: serde_json::Value =
        serde_json::from_str(metrics.lines().rfind(|l| l.contains("guided_contexts_min")).unwrap()).unwrap();
    assert_eq!(seen["guided_contexts_min"].as_u64(), Some(16), "{seen}");
    // Guide only when sparse: the training masks are 30% observed and so are the prior's draws,
    // so an unguided context keeps about 30% of the observed sites: guided under a threshold of
    // 0.9, the unguided intersection under 0.05 (said in the saved config and metrics.jsonl).
    for (run, below, guided) in [("sparse-rule", 0.9, true), ("dense-rule", 0.05, false)] {
        f.train(run, &format!("--partition prior --prior {{d}}/prior --draws 1 --guide-below {below}"));
        let metrics = std::fs::read_to_string(f.p(&format!("{run}/metrics.jsonl"))).unwrap();
        let choice: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
        let share = choice["unguided_context_share"].as_f64().unwrap();
        assert!((0.1..0.6).contains(&share), "{choice}");
        assert_eq!(choice["guided"].as_bool(), Some(guided), "{choice}");
        let cfg = std::fs::read_to_string(f.p(&format!("{run}/config.toml"))).unwrap();
        assert_eq!(cfg.contains("rho ="), guided, "{cfg}");
        let info: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(f.p(&format!("{run}/run.json"))).unwrap()).unwrap();
        assert_eq!(info["partition"], if guided { "prior" } else { "intersect" }, "{info}");
    }
    // A resumed run keeps the choice its saved configuration records.
    f.ok("train --data {d}/train.npz --out {d}/sparse-rule --resume --steps 16");
    let cfg = std::fs::read_to_string(f.p("sparse-rule/config.toml")).unwrap();
    assert!(cfg.contains("rho ="), "{cfg}");
    // Where the rule does not guide, the default prior partition *is* the intersection: the
    // same training and the same completions as `--partition intersect`.
    f.train("intersect", "--partition intersect --prior {d}/prior --draws 1");
    for run in ["dense-rule", "intersect"] {
        f.ok(&format!("impute --run {{d}}/{run} --data {{d}}/test.npz --out {{d}}/{run}.npz --ensemble 2"));
    }
    assert_eq!(
        read(&f.p("dense-rule.npz"), "mean").to_f32(),
        read(&f.p("intersect.npz"), "mean").to_f32(),
        "the unguided choice trains exactly the intersection"
    );
    std::fs::remove_dir_all(f.p("prior")).unwrap();
    f.ok("impute --run {d}/run --data {d}/test.npz --out {d}/pred.npz --ensemble 3");
    let (mean, mask, values) = (
        read(&f.p("pred.npz"), "mean").to_f32(),
        read(&f.p("test.npz"), "mask").to_f32(),
        read(&f.p("test.npz"), "values").to_f32(),
    );
    assert!(mean.iter().all(|v| v.is_finite()));
    assert!((0..mean.len()).all(|k| mask[k] == 0.0 || mean[k] == values[k]), "observations must be kept");

    let e = f.fails("train --data {d}/train.npz --out {d}/r2 --partition prior");
    assert!(e.contains("--prior"), "{e}");
    let prior = f.p("run/mask-prior");
    let e = f.fails(&format!(
        "train --data {{d}}/train.npz --out {{d}}/r3 --partition prior --prior {} --rho 1",
        prior.display()
    ));
    assert!(e.contains("rho"), "{e}");
    let e = f.fails(&format!(
        "train --data {{d}}/train.npz --out {{d}}/r4 --partition intersect --prior {} --rho 0.5",
        prior.display()
    ));
    assert!(e.contains("unguided"), "{e}");
    let e = f.fails(&format!(
        "train --data {{d}}/train.npz --out {{d}}/r4b --partition intersect --prior {} --guide-below 0.5",
        prior.display()
    ));
    assert!(e.contains("unguided"), "{e}");
    let e = f.fails(&format!(
        "train --data {{d}}/train.npz --out {{d}}/r4c --partition prior --prior {} --guide-below 0",
        prior.display()
    ));
    assert!(e.contains("guide_below"), "{e}");
    let e = f.fails(&format!("train --data {{d}}/train.npz --out {{d}}/r5 --prior {}", prior.display()));
    assert!(e.contains("apply to --partition prior"), "{e}");
    f.ok("data gen grf --out {d}/small.npz --n 4 --size 8");
    let e = f.fails(&format!(
        "train --data {{d}}/small.npz --out {{d}}/r6 --partition intersect --prior {}",
        prior.display()
    ));
    assert!(e.contains("fitted on 12×12"), "{e}");
}

/// Issue 8: trajectories `[N, T, C, H, W]` go through the same commands: generation (masks
/// static in time or per frame), training (space-time by default, the snapshot network and
/// per-frame contexts as options), imputation (single- and multi-step), the baselines and
/// evaluation.
#[test]
fn trajectories_train_impute_and_score_end_to_end() {
    let dir = Dir::empty();
    let d = dir.d();
    std::fs::write(format!("{d}/tiny.toml"), TINY).unwrap();
    dir.ok(&format!("data gen advection --out {d}/train.npz --n 16 --size 12 --frames 4 --mask pixel:0.3"));
    let said =
        dir.ok(&format!("data gen advection --out {d}/test.npz --n 3 --size 12 --frames 4 --mask pixel:0.3 --seed 9"));
    assert!(said.contains("trajectories of 4 frames"), "{said}");
    let test = Path::new(&format!("{d}/test.npz")).to_path_buf();
    assert_eq!(read(&test, "values").shape, vec![3, 4, 1, 12, 12]);
    let (mask, values) = (read(&test, "mask").to_f32(), read(&test, "values").to_f32());
    let frame = 144;
    assert!((0..mask.len()).all(|k| mask[k] == mask[(k / (4 * frame)) * 4 * frame + k % frame]), "sensors moved");
    dir.ok(&format!(
        "data gen advection --out {d}/moving.npz --n 2 --size 12 --frames 4 --mask pixel:0.3 --mask-per-frame"
    ));
    let moving = read(Path::new(&format!("{d}/moving.npz")), "mask").to_f32();
    assert!(moving[..frame] != moving[frame..2 * frame], "--mask-per-frame drew one mask for all frames");

    for (run, extra) in [("st", ""), ("snapshot", " --snapshot-model"), ("per-frame", " --context-in-time per-frame")] {
        dir.ok(&format!("train --data {d}/train.npz --out {d}/{run} --config {d}/tiny.toml{extra}"));
        let info = std::fs::read_to_string(format!("{d}/{run}/run.json")).unwrap();
        assert!(info.contains("\"t\": 4"), "{info}");
        let weights = std::fs::read(format!("{d}/{run}/model.safetensors")).unwrap();
        let has_frame_attention = weights.windows(7).any(|w| w == b"frames.");
        assert_eq!(has_frame_attention, run != "snapshot", "{run}: frame attention weights");
        dir.ok(&format!("impute --run {d}/{run} --data {d}/test.npz --out {d}/{run}.npz --ensemble 3"));
        let mean = read(Path::new(&format!("{d}/{run}.npz")), "mean");
        assert_eq!(mean.shape, vec![3, 4, 1, 12, 12]);
        let mean = mean.to_f32();
        for k in 0..mean.len() {
            assert!(mean[k].is_finite());
            if mask[k] != 0.0 {
                assert_eq!(mean[k], values[k], "{run}: observation not pasted back");
            }
        }
        let said = dir.ok(&format!("eval --pred {d}/{run}.npz --truth {d}/test.npz"));
        assert!(said.contains("MSE, missing entries"), "{said}");
    }
    dir.ok(&format!(
        "impute --run {d}/st --data {d}/test.npz --out {d}/samples.npz --ensemble 2 --steps 3 --samples 2"
    ));
    assert_eq!(read(Path::new(&format!("{d}/samples.npz")), "samples").shape, vec![3, 2, 4, 1, 12, 12]);
    for m in ["temporal", "telea", "krige"] {
        dir.ok(&format!("baseline {m} --data {d}/test.npz --train {d}/train.npz --out {d}/{m}.npz"));
        assert_eq!(read(Path::new(&format!("{d}/{m}.npz")), "mean").shape, vec![3, 4, 1, 12, 12]);
        dir.ok(&format!("eval --pred {d}/{m}.npz --truth {d}/test.npz"));
    }

    let err = dir.fails("data gen grf --out {d}/x.npz --frames 3");
    assert!(err.contains("no dynamics"), "{err}");
    dir.ok(&format!("data gen advection --out {d}/snap.npz --n 2 --size 12 --mask pixel:0.3"));
    let err = dir.fails("impute --run {d}/st --data {d}/snap.npz --out {d}/x.npz");
    assert!(err.contains("trained on 4 frames"), "{err}");
}
