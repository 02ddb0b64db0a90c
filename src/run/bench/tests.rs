use super::*;

#[test]
fn method_specs_parse_and_map_to_partitions() {
    let m: MethodSpec = "exact-pixel@0.5/3".parse().unwrap();
    let plain = MethodSpec {
        name: "exact-pixel".into(),
        param: Some(0.5),
        k: Some(3),
        snapshot: false,
        per_frame: false,
        published: false,
        guidance_loss: None,
        always_guide: false,
        interpolant: None,
    };
    assert_eq!(m, plain);
    let m: MethodSpec = "pixel:krige".parse().unwrap();
    assert_eq!((m.interpolant, m.run_name().as_str()), (Some(Interpolant::Krige), "run-pixel-krige"));
    assert_eq!("block@2:fill".parse::<MethodSpec>().unwrap().run_name(), "run-block@2-fill");
    assert!("pixel:published:krige".parse::<MethodSpec>().is_err(), "the published recipe has no interpolant");
    let m: MethodSpec = "prior@0.5:anchors".parse().unwrap();
    assert_eq!(
        (m.param, m.guidance_loss, m.run_name().as_str()),
        (Some(0.5), Some(GuidanceLoss::Anchors), "run-prior@0.5-anchors")
    );
    let Some(Partition::Prior { rho, guidance_loss, .. }) = m.partition(&Pattern::Pixel { observed: 0.3 }).unwrap()
    else {
        panic!("prior@0.5:anchors is a prior partition")
    };
    assert_eq!((rho, guidance_loss), (Some(0.5), GuidanceLoss::Anchors));
    assert!("pixel:anchors".parse::<MethodSpec>().is_err());
    let m: MethodSpec = "prior:anchors:guided".parse().unwrap();
    assert_eq!(m.run_name(), "run-prior-anchors-guided");
    let Some(Partition::Prior { guide_below, .. }) = m.partition(&Pattern::Pixel { observed: 0.3 }).unwrap() else {
        panic!("prior:guided is a prior partition")
    };
    assert_eq!(guide_below, 1.0, ":guided always guides");
    assert!("intersect:guided".parse::<MethodSpec>().is_err());
    let m: MethodSpec = "pixel@0.5/3:snapshot:per-frame".parse().unwrap();
    assert_eq!((m.name.as_str(), m.param, m.k, m.snapshot, m.per_frame), ("pixel", Some(0.5), Some(3), true, true));
    assert_eq!(m.run_name(), "run-pixel@0.5-snapshot-per-frame");
    assert!("pixel:fast".parse::<MethodSpec>().is_err());
    let block = Pattern::Block { grid: 4, missing: 2 };
    assert_eq!(
        "block@2".parse::<MethodSpec>().unwrap().partition(&block).unwrap(),
        Some(Partition::Block { grid: 4, drop: 2 })
    );
    assert_eq!("krige".parse::<MethodSpec>().unwrap().partition(&block).unwrap(), None);
    assert!("pixel@1.5".parse::<MethodSpec>().unwrap().partition(&block).is_err());
    assert!("pixel/0".parse::<MethodSpec>().is_err());
    assert_eq!(slug("GRF 32² pixel 20%"), "grf-32-pixel-20");
    assert_eq!(slug("pixel@0.7/30"), "pixel@0.7-30");
    for name in ["quick", "decompose", "paper"] {
        Suite::builtin(name).unwrap().validate().unwrap();
    }
    let m: MethodSpec = "pixel:published".parse().unwrap();
    assert!(m.published && m.run_name() == "run-pixel-published");
    let mut bad = Suite::builtin("quick").unwrap();
    bad.cases[0].methods.push("krige:published".into());
    assert!(bad.validate().unwrap_err().to_string().contains("applies to learned methods"));
    let mut bad = Suite::builtin("quick").unwrap();
    bad.cases[0].methods.push("magic".into());
    assert!(bad.validate().unwrap_err().to_string().contains("unknown method"));
}

/// A suite asking for curves trains the learned methods with held-out scoring on the test
/// fields (ratios to the GRF oracle) and writes one PNG and CSV per case and seed, with the
/// published and the current recipe as curves and the baselines as lines.
#[test]
fn curve_suites_write_learning_curves_with_baseline_lines() {
    let dir = tempfile::tempdir().unwrap();
    let suite: Suite = toml::from_str(
        r#"
name = "t"
seeds = 1
steps = 10
ensemble = 2
batch = 4
curves = 5
[[cases]]
name = "rough"
kind = "grf"
size = 8
length_scale = 2.0
smoothness = 0.5
mask = "pixel:0.5"
train = 16
test = 4
methods = ["pixel", "pixel:published", "oracle", "harmonic"]
"#,
    )
    .unwrap();
    run(&suite, dir.path(), true, false).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("curves-rough-seed-0.csv")).unwrap();
    assert!(dir.path().join("curves-rough-seed-0.png").exists());
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    for m in ["pixel", "pixel:published"] {
        let steps: Vec<&str> = rows.iter().filter(|r| r[0] == m).map(|r| r[1]).collect();
        assert_eq!(steps, ["5", "10"], "{m}: a score every 5 steps");
        assert!(rows.iter().filter(|r| r[0] == m).all(|r| r[4].parse::<f64>().unwrap() > 0.0), "ratios to the oracle");
    }
    for line in ["oracle", "harmonic"] {
        assert!(rows.iter().any(|r| r[0] == line && r[1].is_empty()), "{line} is a reference line");
    }
    let published = TrainConfig::load_run(&dir.path().join("rough/seed-0/run-pixel-published/config.toml")).unwrap();
    assert_eq!(published.denoiser, crate::method::precond::DenoiserConfig::legacy());
    assert_eq!(published.score.fields, 4, "curves score every test field, those of the baseline lines");
    // One method rerun where another's run directory is gone (made elsewhere, or cleared):
    // that one keeps its curve, read from the CSV beside its record.
    let seed_dir = dir.path().join("rough/seed-0");
    std::fs::remove_dir_all(seed_dir.join("run-pixel-published")).unwrap();
    std::fs::remove_file(seed_dir.join("pixel.json")).unwrap();
    run(&suite, dir.path(), true, false).unwrap();
    let again = std::fs::read_to_string(dir.path().join("curves-rough-seed-0.csv")).unwrap();
    let rows_of = |text: &str, m: &str| text.lines().filter(|l| l.starts_with(&format!("{m},"))).count();
    assert_eq!(rows_of(&again, "pixel:published"), 2, "{again}");
    let kept = |text: &str| text.lines().filter(|l| l.starts_with("pixel:published,")).collect::<Vec<_>>().join("\n");
    assert_eq!(kept(&again), kept(&csv));
    assert_eq!(rows_of(&again, "pixel"), 2, "{again}");
    // A copy of the suite naming fewer methods (how one row is redone) keeps the curves of
    // the methods it leaves out while their records stand, and drops them once they are gone.
    let mut fewer = suite.clone();
    fewer.cases[0].methods = vec!["pixel".into(), "harmonic".into()];
    std::fs::remove_file(seed_dir.join("pixel.json")).unwrap();
    run(&fewer, dir.path(), true, false).unwrap();
    let third = std::fs::read_to_string(dir.path().join("curves-rough-seed-0.csv")).unwrap();
    assert_eq!(kept(&third), kept(&csv), "{third}");
    std::fs::remove_file(seed_dir.join("pixel-published.json")).unwrap();
    std::fs::remove_file(seed_dir.join("pixel.json")).unwrap();
    run(&fewer, dir.path(), true, false).unwrap();
    let fourth = std::fs::read_to_string(dir.path().join("curves-rough-seed-0.csv")).unwrap();
    assert_eq!(rows_of(&fourth, "pixel:published"), 0, "{fourth}");
}

/// A bench's output, committed to git, is enough to continue it elsewhere: a clone holds
/// only the records (the written `.gitignore` keeps data, runs and predictions out), and the
/// bench run again over it reuses every record without training. A run stopped after its
/// last checkpoint but before it was marked done is not trained again either.
#[test]
fn a_bench_continues_from_its_committed_records_and_its_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let suite: Suite = toml::from_str(
        r#"
name = "t"
seeds = 1
steps = 6
ensemble = 2
batch = 4
[[cases]]
name = "tiny"
kind = "grf"
size = 8
mask = "pixel:0.5"
train = 12
test = 3
methods = ["pixel", "harmonic"]
"#,
    )
    .unwrap();
    let first = dir.path().join("first");
    let records = run(&suite, &first, true, false).unwrap();
    let mse = |rs: &[Record], m: &str| rs.iter().find(|r| r.method == m).unwrap().metrics.mse_missing;
    let pixel = first.join("tiny/seed-0/pixel.json");
    let p = &records.iter().find(|r| r.method == "pixel").unwrap().provenance;
    assert!(p.as_ref().is_some_and(|p| p.inputs.len() == 2), "records say what made them: {p:?}");

    // Stopped between the last checkpoint and the done mark: the record is remade from it.
    let run_dir = first.join("tiny/seed-0/run-pixel");
    std::fs::remove_file(run_dir.join("bench-trained.toml")).unwrap();
    std::fs::remove_file(&pixel).unwrap();
    let before = std::fs::metadata(run_dir.join("checkpoint.safetensors")).unwrap().modified().unwrap();
    let again = run(&suite, &first, true, false).unwrap();
    assert_eq!(mse(&again, "pixel"), mse(&records, "pixel"));
    let after = std::fs::metadata(run_dir.join("checkpoint.safetensors")).unwrap().modified().unwrap();
    assert_eq!(before, after, "the finished run was not trained again");

    let git = |args: &[&str], cwd: &Path| std::process::Command::new("git").args(args).current_dir(cwd).output();
    let Ok(init) = git(&["init", "-q", "."], &first) else {
        eprintln!("no git on this machine: the committed-records half of this test is skipped");
        return;
    };
    assert!(init.status.success());
    let kept = git(&["ls-files", "--others", "--exclude-standard"], &first).unwrap();
    let kept = String::from_utf8(kept.stdout).unwrap();
    let mut kept: Vec<&str> = kept.lines().collect();
    kept.sort();
    assert_eq!(
        kept,
        [
            ".gitignore",
            "results.csv",
            "results.md",
            "suite.toml",
            "tiny.png",
            "tiny/case.toml",
            "tiny/seed-0/harmonic.json",
            "tiny/seed-0/pixel.json"
        ]
    );
    let clone = dir.path().join("clone");
    for f in &kept {
        let to = clone.join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(first.join(f), to).unwrap();
    }
    // A report on the clone (records, no data files) tabulates every committed record.
    let reported = run(&suite, &clone, true, true).unwrap();
    assert_eq!(reported.len(), 2, "{reported:?}");
    assert_eq!(mse(&reported, "pixel"), mse(&records, "pixel"));
    let continued = run(&suite, &clone, true, false).unwrap();
    assert_eq!(mse(&continued, "pixel"), mse(&records, "pixel"));
    assert!(!clone.join("tiny/seed-0/run-pixel").exists(), "a method with a record is not trained again");
}

/// Running one case of a suite (`bench --case`) into an output that holds another case's
/// records keeps that case's rows in `results.md`/`results.csv` and in the `suite.toml` written
/// there: it is reported from its records, neither recomputed nor dropped.
#[test]
fn running_one_case_keeps_the_other_cases_rows() {
    let dir = tempfile::tempdir().unwrap();
    let suite: Suite = toml::from_str(
        r#"
name = "t"
seeds = 1
steps = 4
ensemble = 2
batch = 4
[[cases]]
name = "first"
kind = "grf"
size = 8
mask = "pixel:0.5"
train = 8
test = 3
methods = ["harmonic"]
[[cases]]
name = "second"
kind = "grf"
size = 8
mask = "pixel:0.3"
train = 8
test = 3
methods = ["biharmonic"]
"#,
    )
    .unwrap();
    let out = dir.path();
    let only = |name: &'static str| move |c: &Case| c.name == name;
    let first = run_cases(&suite, out, true, false, only("first")).unwrap();
    assert_eq!(first.len(), 1);
    assert!(!out.join("second/seed-0/test.npz").exists(), "an unselected case makes no data");
    let both = run_cases(&suite, out, true, false, only("second")).unwrap();
    assert_eq!(both.iter().map(|r| r.case.as_str()).collect::<Vec<_>>(), ["first", "second"]);
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("## first") && md.contains("| harmonic |"), "{md}");
    assert!(md.contains("## second") && md.contains("| biharmonic |"), "{md}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let written: Suite = toml::from_str(&std::fs::read_to_string(out.join("suite.toml")).unwrap()).unwrap();
    assert_eq!(written.cases.len(), 2);
}

/// A suite of one small GRF case `c` (8×8, 8 training and 3 test fields) observed through
/// `mask`; `methods` is the TOML array's inside, e.g. `"harmonic", "biharmonic"`.
fn one_case_suite(mask: &str, methods: &str) -> Suite {
    toml::from_str(&format!(
        "name = \"t\"\nseeds = 1\nsteps = 4\nensemble = 2\n[[cases]]\nname = \"c\"\nkind = \"grf\"\nsize = 8\n\
         mask = \"{mask}\"\ntrain = 8\ntest = 3\nmethods = [{methods}]\n"
    ))
    .unwrap()
}

/// Predictions are not kept in git: a bench run where some recorded methods have no
/// prediction on disk keeps the case's panel as it was instead of redrawing it without their
/// rows, and draws one where there is none.
#[test]
fn a_panel_is_not_redrawn_without_the_rows_of_methods_whose_predictions_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let suite = |methods: &str| one_case_suite("pixel:0.5", methods);
    let out = dir.path();
    let png = out.join("c.png");
    run(&suite("\"harmonic\", \"biharmonic\""), out, true, false).unwrap();
    let drawn = std::fs::read(&png).unwrap();
    std::fs::remove_file(out.join("c/seed-0/pred-harmonic.npz")).unwrap();
    // A method added later is computed and recorded, but the panel keeps the harmonic row.
    let more = run(&suite("\"harmonic\", \"biharmonic\", \"telea\""), out, true, false).unwrap();
    assert_eq!(more.len(), 3);
    assert!(out.join("c/seed-0/pred-telea.npz").exists());
    assert!(std::fs::read(&png).unwrap() == drawn, "the panel was redrawn without the harmonic row");
    // With no panel to keep, one is drawn from the predictions there are.
    std::fs::remove_file(&png).unwrap();
    run(&suite("\"harmonic\", \"biharmonic\", \"telea\""), out, true, true).unwrap();
    assert!(png.exists() && std::fs::read(&png).unwrap() != drawn);
}

/// A case whose definition changed since its records were made is refused, not continued
/// from records of another experiment; a longer method list is not a change, and a report
/// never checks.
#[test]
fn a_changed_case_is_refused_rather_than_continued_from_its_old_records() {
    let dir = tempfile::tempdir().unwrap();
    let suite = one_case_suite;
    let out = dir.path();
    run(&suite("pixel:0.5", "\"harmonic\""), out, true, false).unwrap();
    assert!(out.join("c/case.toml").exists());
    let more = run(&suite("pixel:0.5", "\"harmonic\", \"biharmonic\""), out, true, false).unwrap();
    assert_eq!(more.len(), 2);
    let e = format!("{:#}", run(&suite("pixel:0.3", "\"harmonic\""), out, true, false).unwrap_err());
    assert!(e.contains("changed since the records") && e.contains("pixel:0.3"), "{e}");
    run(&suite("pixel:0.3", "\"harmonic\""), out, true, true).unwrap();
}

/// Where the guidance rule makes a `prior` method the unguided intersection (dense masks), its
/// record's context share and query balance are the intersection's, measured on the partition
/// the run trained, not the guided one the method named; and the `intersect` method, which
/// would train that same model, imputes with the `prior` run instead of training it again.
/// Where the rule guides (sparse masks), `intersect` trains its own. The prior trains 40 steps:
/// after 3 its draws kept 40% of the observed sites, near the rule's 30% line, and its training
/// shares libtorch's global generator with tests running beside it (a flake); after 40, 92%.
#[test]
fn a_prior_method_reports_the_partition_its_run_trained() {
    let dir = tempfile::tempdir().unwrap();
    let suite: Suite = toml::from_str(
        r#"
name = "t"
seeds = 1
steps = 3
ensemble = 2
batch = 4
prior_steps = 40
prior_sample_steps = 2
[[cases]]
name = "dense"
kind = "grf"
size = 8
mask = "pixel:0.7"
train = 8
test = 2
methods = ["prior", "intersect"]
[[cases]]
name = "sparse"
kind = "grf"
size = 8
mask = "pixel:0.15"
train = 8
test = 2
methods = ["prior", "intersect"]
"#,
    )
    .unwrap();
    let records = run(&suite, dir.path(), true, false).unwrap();
    let record = |c: &str, m: &str| records.iter().find(|r| r.case == c && r.method == m).unwrap();
    let stats = |m: &str| record("dense", m).partition.unwrap();
    let trained = TrainConfig::load_run(&dir.path().join("dense/seed-0/run-prior/config.toml")).unwrap();
    assert!(matches!(trained.partition, Partition::Prior { rho: None, .. }), "the rule chose the intersection");
    assert_eq!(stats("prior").context_share, stats("intersect").context_share);
    assert_eq!(stats("prior").query_min, stats("intersect").query_min);
    // The intersection was trained once: `intersect` imputed with the `prior` run.
    assert_eq!(record("dense", "intersect").run.as_deref(), Some("run-prior"));
    assert!(!dir.path().join("dense/seed-0/run-intersect").exists());
    assert_eq!(record("dense", "intersect").metrics.mse_missing, record("dense", "prior").metrics.mse_missing);
    // Work II runs choose their inference contexts on the test data; the record and the
    // table say which (the same for the twin, whose model and data are the same).
    let chosen = record("dense", "prior").contexts.clone().expect("a Work II method's contexts are chosen");
    assert_eq!(record("dense", "intersect").contexts.as_ref(), Some(&chosen));
    let table = std::fs::read_to_string(dir.path().join("results.md")).unwrap();
    let label = format!("| intersect (the model of `run-prior`), contexts: {} |", chosen.chosen());
    assert!(table.contains(&label), "{label} not in {table}");
    // A record removed is made again from the finished run, without training; its seconds
    // still count that run's training.
    let metrics = dir.path().join("dense/seed-0/run-prior/metrics.jsonl");
    let logged = std::fs::read(&metrics).unwrap();
    std::fs::remove_file(dir.path().join("dense/seed-0/prior.json")).unwrap();
    let again = run(&suite, dir.path(), true, false).unwrap();
    let prior = again.iter().find(|r| r.case == "dense" && r.method == "prior").unwrap();
    assert_eq!(std::fs::read(&metrics).unwrap(), logged, "the finished run was not trained again");
    assert_eq!(prior.metrics.mse_missing, record("dense", "prior").metrics.mse_missing);
    assert!(prior.seconds >= prior.training_seconds.unwrap(), "{} s", prior.seconds);
    // Sparse masks: the rule guided the `prior` run, so `intersect` is another model.
    let guided = TrainConfig::load_run(&dir.path().join("sparse/seed-0/run-prior/config.toml")).unwrap();
    assert!(matches!(guided.partition, Partition::Prior { rho: Some(_), .. }), "the rule guided");
    assert_eq!(record("sparse", "intersect").run, None);
    assert!(dir.path().join("sparse/seed-0/run-intersect/bench-trained.toml").exists());
}

/// A suite's time budget (`minutes`) stops every learned method by the clock, well before its
/// step cap here, and the records, the CSV and the table say how many steps it bought.
#[test]
fn a_time_budget_stops_learned_methods_and_the_tables_say_how_many_steps() {
    let dir = tempfile::tempdir().unwrap();
    let suite: Suite = toml::from_str(
        r#"
name = "t"
seeds = 1
steps = 100000
minutes = 0.002
ensemble = 2
batch = 4
[[cases]]
name = "timed"
kind = "grf"
size = 8
mask = "pixel:0.5"
train = 16
test = 4
methods = ["pixel", "harmonic"]
"#,
    )
    .unwrap();
    suite.validate().unwrap();
    run(&suite, dir.path(), true, false).unwrap();
    let record: Record =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("timed/seed-0/pixel.json")).unwrap()).unwrap();
    let steps = record.steps.expect("a learned record says its steps");
    assert!((1..100000).contains(&steps), "stopped by the 0.12 s budget, not the cap: {steps}");
    let cfg = TrainConfig::load_run(&dir.path().join("timed/seed-0/run-pixel/config.toml")).unwrap();
    assert!((cfg.time_budget.unwrap() - 0.12).abs() < 1e-9, "{:?}", cfg.time_budget);
    let md = std::fs::read_to_string(dir.path().join("results.md")).unwrap();
    assert!(md.contains("or 0.002 minutes of training"), "{md}");
    assert!(md.contains(&format!("({steps} steps)")), "{md}");
    let csv = std::fs::read_to_string(dir.path().join("results.csv")).unwrap();
    let pixel = csv.lines().find(|l| l.starts_with("timed,pixel,")).unwrap();
    assert!(pixel.ends_with(&format!(",{steps}")), "{pixel}");
    assert!(csv.lines().find(|l| l.starts_with("timed,harmonic,")).unwrap().ends_with(','), "{csv}");

    let mut bad = suite.clone();
    bad.cases[0].minutes = Some(0.0);
    assert!(bad.validate().unwrap_err().to_string().contains("minutes must be a positive number"));
}

/// In a `published_time` suite continued from committed records (the published run's
/// directory is not in git), the other methods take their budget from the published record.
#[test]
fn equal_time_methods_take_the_published_budget_from_its_record_when_the_run_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let suite: Suite = toml::from_str(
        r#"
name = "t"
seeds = 1
steps = 4
ensemble = 2
batch = 4
published_time = true
[[cases]]
name = "equal"
kind = "grf"
size = 8
mask = "pixel:0.5"
train = 12
test = 3
methods = ["pixel:published", "pixel"]
"#,
    )
    .unwrap();
    run(&suite, dir.path(), true, false).unwrap();
    let seed = dir.path().join("equal/seed-0");
    let record: Record =
        serde_json::from_str(&std::fs::read_to_string(seed.join("pixel-published.json")).unwrap()).unwrap();
    let published = record.training_seconds.expect("a learned record keeps its training clock");
    assert!(published > 0.0);
    std::fs::remove_dir_all(seed.join("run-pixel-published")).unwrap();
    std::fs::remove_dir_all(seed.join("run-pixel")).unwrap();
    std::fs::remove_file(seed.join("pixel.json")).unwrap();
    run(&suite, dir.path(), true, false).unwrap();
    let cfg = TrainConfig::load_run(&seed.join("run-pixel/config.toml")).unwrap();
    assert_eq!(cfg.time_budget, Some(published), "the budget is the recorded training clock");
}

/// A learned run stopped before its first held-out score (its `metrics.jsonl` has only the
/// loss lines) has no curve yet: a report over it, or a bench of another case, tabulates the
/// records there are and draws the runs that have scores, instead of failing on that run.
#[test]
fn a_report_beside_a_run_stopped_before_its_first_score_leaves_that_run_out() {
    let dir = tempfile::tempdir().unwrap();
    let suite: Suite = toml::from_str(
        r#"
name = "t"
seeds = 1
steps = 6
ensemble = 2
batch = 4
curves = 3
[[cases]]
name = "partial"
kind = "grf"
size = 8
mask = "pixel:0.5"
train = 12
test = 3
methods = ["pixel", "pixel:published", "harmonic"]
"#,
    )
    .unwrap();
    run(&suite, dir.path(), true, false).unwrap();
    let seed = dir.path().join("partial/seed-0");
    // The published run as if stopped at step 2: no record, no scored line yet.
    std::fs::remove_file(seed.join("pixel-published.json")).unwrap();
    let metrics = seed.join("run-pixel-published/metrics.jsonl");
    let text = std::fs::read_to_string(&metrics).unwrap();
    let unscored: String = text.lines().filter(|l| !l.contains("score_mse")).map(|l| format!("{l}\n")).collect();
    assert!(unscored.len() < text.len(), "the run had scores to remove");
    std::fs::write(&metrics, unscored).unwrap();

    let reported = run(&suite, dir.path(), true, true).unwrap();
    let mut methods: Vec<&str> = reported.iter().map(|r| r.method.as_str()).collect();
    methods.sort();
    assert_eq!(methods, ["harmonic", "pixel"]);
    let csv = std::fs::read_to_string(dir.path().join("curves-partial-seed-0.csv")).unwrap();
    assert!(csv.lines().any(|l| l.starts_with("pixel,")), "{csv}");
    assert!(!csv.lines().any(|l| l.starts_with("pixel:published,")), "the unscored run is left out: {csv}");
}
