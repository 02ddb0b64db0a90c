use super::*;
use crate::method::partition::PartitionKind;

#[test]
fn batches_cover_each_epoch_once() {
    let n = 10;
    let mut seen: Vec<usize> = (1..=5).flat_map(|s| batch_indices(7, s, 2, n)).map(|(i, _)| i).collect();
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    assert_eq!(batch_indices(7, 3, 4, n), batch_indices(7, 3, 4, n));
    // The second epoch visits every field a second time.
    let second: Vec<(usize, usize)> = (6..=10).flat_map(|s| batch_indices(7, s, 2, n)).collect();
    assert!(second.iter().all(|&(_, epoch)| epoch == 1));
    // With two contexts per field, a field's draws count 2·epoch and 2·epoch + 1.
    let cfg = TrainConfig { batch: 4, contexts_per_field: 2, seed: 7, ..Default::default() };
    let (idx, visits) = batch_fields(&cfg, 6, n);
    assert_eq!(idx.len(), 4);
    assert_eq!((idx[0], idx[2]), (idx[1], idx[3]));
    assert_eq!(visits, vec![2, 3, 2, 3]);
}

#[test]
fn validation_split_is_disjoint_and_nonempty() {
    let (t, v) = split_validation(20, 0.1, 1);
    assert_eq!((t.len(), v.len()), (18, 2));
    assert!(t.iter().all(|i| !v.contains(i)));
    assert_eq!(split_validation(1, 0.1, 1).1.len(), 0);
    assert_eq!(split_validation(3, 0.01, 1).1.len(), 1);
}

fn small_run(dir: &Path, steps: usize) -> (std::path::PathBuf, TrainConfig) {
    use crate::data::grf::GrfSpec;
    let data = dir.join("train.npz");
    crate::data::synth::grf_set(&GrfSpec::new(8), 40, &crate::data::Pattern::Pixel { observed: 0.5 }, 1)
        .unwrap()
        .save(&data)
        .unwrap();
    let mut cfg =
        TrainConfig { steps, batch: 4, val_fraction: 0.25, val_every: 5, checkpoint_every: 5, ..Default::default() };
    cfg.model.channels = 8;
    cfg.model.mults = vec![1, 2];
    cfg.model.attention = false;
    cfg.score.every = 5;
    cfg.score.ensemble = 2;
    (data, cfg)
}

fn scores(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("score_mse").is_some())
        .collect()
}

/// Scoring logs a curve on hidden observations (no truth in the file), keeps the weights of
/// the best score in model.safetensors and the last ones beside them, and patience stops
/// training once the score stalls.
#[test]
fn scoring_keeps_the_best_weights_and_patience_stops_training() {
    let dir = tempfile::tempdir().unwrap();
    let (data, mut cfg) = small_run(dir.path(), 30);
    cfg.optim.lr = 0.05; // noisy enough that some score fails to improve
    let run = dir.path().join("run");
    let s = train(&data, &run, &cfg, false, true).unwrap();
    let curve = scores(&run);
    assert_eq!(curve.len(), 6, "a score every 5 steps");
    assert!(curve.iter().all(|v| v["score_kind"] == "holdout" && v["score_mse"].as_f64().unwrap().is_finite()));
    let best = curve.iter().map(|v| v["score_mse"].as_f64().unwrap()).fold(f64::INFINITY, f64::min);
    assert_eq!(s.best_score, Some(best));
    let best_step = curve.iter().find(|v| v["score_mse"].as_f64() == Some(best)).unwrap()["step"].as_u64().unwrap();
    assert_eq!(s.best_step as u64, best_step);
    let load = |p: &Path| {
        let t = tch::Tensor::read_safetensors(p).unwrap();
        t.into_iter().find(|(n, _)| n == "conv_in.weight").unwrap().1
    };
    let kept = load(&RunDir(run.clone()).model());
    let last = load(&RunDir(run.clone()).last_model());
    assert_eq!(best_step == 30, kept.equal(&last), "model.safetensors holds the best weights, model-last the last");

    // Early stopping: with patience 1 the run ends at the first score that does not improve.
    let run2 = dir.path().join("run2");
    cfg.score.patience = 1;
    let s2 = train(&data, &run2, &cfg, false, true).unwrap();
    let curve2 = scores(&run2);
    // Not an improvement: above the best so far less its relative tolerance of 1e-4.
    let stalled = |w: &[serde_json::Value]| {
        w[1]["score_mse"].as_f64().unwrap() >= w[0]["best_score"].as_f64().unwrap() * (1.0 - 1e-4)
    };
    match curve2.windows(2).position(stalled) {
        Some(i) => {
            assert_eq!(curve2.len(), i + 2, "training went on after the score stalled");
            assert!(s2.stopped.is_some(), "no reason given for stopping");
            assert_eq!(s2.steps as u64, curve2[i + 1]["step"].as_u64().unwrap());
        }
        None => assert_eq!((s2.steps, s2.stopped.is_none()), (30, true)),
    }
}

/// A time budget ends training when spent, and a run saved without a `[denoiser]` table
/// loads with the published parameterisation (it was trained with it).
#[test]
fn time_budget_stops_training_and_old_runs_keep_their_parameterisation() {
    let dir = tempfile::tempdir().unwrap();
    let (data, mut cfg) = small_run(dir.path(), 100_000);
    cfg.time_budget = Some(1.0);
    cfg.score.every = 0;
    let run = dir.path().join("run");
    let s = train(&data, &run, &cfg, false, true).unwrap();
    assert!(s.steps < 100_000 && s.stopped.as_deref().is_some_and(|w| w.contains("time budget")));
    assert!(RunDir(run.clone()).model().exists(), "the last weights are kept when nothing is scored");

    let saved = RunDir(run).config();
    let text = std::fs::read_to_string(&saved).unwrap();
    let mut table: toml::Table = toml::from_str(&text).unwrap();
    table.remove("denoiser");
    table.remove("score");
    table.remove("time_low_share");
    table.remove("inference_context_ratio");
    std::fs::write(&saved, toml::to_string(&table).unwrap()).unwrap();
    let old = TrainConfig::load_run(&saved).unwrap();
    assert_eq!(old.denoiser, crate::method::precond::DenoiserConfig::legacy());
    assert_eq!(old.score.every, 0);
    assert_eq!((old.time_low_share, old.inference_context_ratio), (0.0, 0.0));
    assert_eq!(TrainConfig::load(&saved).unwrap().denoiser, TrainConfig::default().denoiser);
}

/// `interpolant = "krige"`: the covariance is fitted at the start, saved beside the weights
/// (and in their metadata), kept on resume, and needed by inference; a fresh run of the fill
/// into the same directory does not inherit it.
#[test]
fn a_kriging_run_keeps_its_covariance_and_imputes_with_it() {
    use crate::method::precond::Interpolant;
    let dir = tempfile::tempdir().unwrap();
    let (data, mut cfg) = small_run(dir.path(), 5);
    cfg.denoiser.interpolant = Interpolant::Krige;
    cfg.periodic = true;
    let run = dir.path().join("run");
    train(&data, &run, &cfg, false, true).unwrap();
    let path = RunDir(run.clone()).interpolant();
    let chosen = super::super::interpolant::Chosen::load(&path).unwrap();
    assert_eq!(chosen.interpolant, Interpolant::Krige);
    let fitted = chosen.covariance.clone().unwrap();
    assert_eq!(fitted.len(), 1, "one model per channel");
    assert!(fitted[0].variance > 0.1 && fitted[0].length_scale > 0.0, "{fitted:?}");
    // The safetensors header: 8 bytes of length, then JSON with `__metadata__`.
    let bytes = std::fs::read(RunDir(run.clone()).model()).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    let carried = header["__metadata__"]["interpolant"].as_str().unwrap_or_default();
    assert!(carried.contains("length_scale"), "the weights carry the covariance: {carried:?}");

    // Resumed: the same covariance, not a refit.
    let edited = lacuna_core::baseline::krige::CovModel { length_scale: 1.5, ..fitted[0] };
    super::super::interpolant::Chosen { covariance: Some(vec![edited]), ..chosen }.save(&path).unwrap();
    let mut longer = TrainConfig::load_run(&RunDir(run.clone()).config()).unwrap();
    longer.steps = 10;
    train(&data, &run, &longer, true, true).unwrap();
    let kept = super::super::interpolant::Chosen::load(&path).unwrap();
    assert_eq!(kept.covariance.unwrap()[0].length_scale, 1.5);

    let out = dir.path().join("pred.npz");
    let opts = crate::run::impute::ImputeOptions { ensemble: 2, ..Default::default() };
    crate::run::impute::impute(&run, &data, &out, &opts, true).unwrap();
    assert!(out.exists());
    std::fs::remove_file(&path).unwrap();
    let err = crate::run::impute::impute(&run, &data, &out, &opts, true).unwrap_err();
    assert!(format!("{err:#}").contains("interpolant.json"), "{err:#}");

    // A fill run started in a directory left by a kriging run that never saved weights does
    // not inherit its covariance.
    for f in [RunDir(run.clone()).checkpoint(), RunDir(run.clone()).model(), RunDir(run.clone()).last_model()] {
        let _ = std::fs::remove_file(f);
    }
    std::fs::write(&path, "[]").unwrap();
    cfg.denoiser.interpolant = Interpolant::Fill;
    train(&data, &run, &cfg, false, true).unwrap();
    assert!(!path.exists(), "a fill run keeps no covariance");
}

#[test]
fn cosine_schedule_warms_up_and_decays() {
    let cfg = TrainConfig { steps: 1000, ..Default::default() };
    assert!(scheduled_lr(&cfg, 1, 0.0, 0.0) < 2e-5 + 1e-9);
    assert!((scheduled_lr(&cfg, 100, 0.0, 0.0) - cfg.optim.lr).abs() < 1e-9);
    assert!((scheduled_lr(&cfg, 1000, 0.0, 0.0) - 1e-5).abs() < 1e-9);
    // A time budget ends the decay when it is spent, whatever the step.
    let timed = TrainConfig { steps: 1000, time_budget: Some(60.0), ..Default::default() };
    assert!((scheduled_lr(&timed, 200, 0.0, 60.0) - 1e-5).abs() < 1e-9);
    assert!(scheduled_lr(&timed, 200, 0.0, 30.0) > scheduled_lr(&timed, 200, 0.0, 50.0));
}

/// A 10-step Work II run of `kind` on `small_run`'s data, with a 5-step mask prior fitted in
/// `dir/prior`; no scoring.
fn small_work_ii_run(dir: &Path, kind: PartitionKind) -> (std::path::PathBuf, TrainConfig) {
    let (data, mut cfg) = small_run(dir, 10);
    cfg.score.every = 0;
    let prior = dir.join("prior");
    let pcfg = crate::run::masks::PriorConfig { steps: 5, batch: 8, sample_steps: 2, ..Default::default() };
    crate::run::masks::fit(&data, &prior, &pcfg, true).unwrap();
    cfg.partition = kind.with_defaults(prior);
    (data, cfg)
}

/// The guide-below choice is made once, when a run starts: resumed with the configuration it
/// was started from (as the bench resumes its runs), a run the rule made unguided stays
/// unguided (no guided contexts are drawn or logged), though the rule is not re-applied.
#[test]
fn a_resumed_run_keeps_the_guidance_choice_it_started_with() {
    let dir = tempfile::tempdir().unwrap();
    let (data, mut cfg) = small_work_ii_run(dir.path(), PartitionKind::Prior);
    // Half the sites observed, so an unguided context keeps about half: above 0.05, unguided.
    if let Partition::Prior { guide_below, draws, .. } = &mut cfg.partition {
        *guide_below = 0.05;
        *draws = 1;
    }
    let run = dir.path().join("run");
    train(&data, &run, &cfg, false, true).unwrap();
    let saved = TrainConfig::load_run(&RunDir(run.clone()).config()).unwrap();
    assert!(matches!(saved.partition, Partition::Prior { rho: None, .. }), "{:?}", saved.partition);
    cfg.steps = 15;
    train(&data, &run, &cfg, true, true).unwrap();
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(!metrics.contains("guided_contexts"), "the resumed run guided: {metrics}");
    assert!(metrics.contains("\"step\":15"), "{metrics}");
}

/// `impute --context-ratio 1` on a Work II run gives every ensemble member the whole
/// observation: the same completion as the run's weights behind a pixel partition at ratio 1,
/// and not the one its intersections with prior draws give (`--context-ratio 0`).
#[test]
fn work_ii_whole_observation_contexts_are_the_pixel_runs_at_ratio_one() {
    use crate::data::npy::Npz;
    use crate::run::impute::{impute, Contexts, ImputeOptions};
    let dir = tempfile::tempdir().unwrap();
    let (data, cfg) = small_work_ii_run(dir.path(), PartitionKind::Intersect);
    let run = dir.path().join("run");
    train(&data, &run, &cfg, false, true).unwrap();
    // The same weights behind the pixel partition at ratio 1 (the run's files, its config edited).
    let pixel = dir.path().join("pixel");
    std::fs::create_dir(&pixel).unwrap();
    for entry in std::fs::read_dir(&run).unwrap().flatten() {
        if entry.path().is_file() {
            std::fs::copy(entry.path(), pixel.join(entry.file_name())).unwrap();
        }
    }
    let mut edited = TrainConfig::load_run(&RunDir(run.clone()).config()).unwrap();
    // A pixel run's inference contexts are the whole observation at inference ratio 1.
    edited.partition = Partition::Pixel { context_ratio: 0.7, query_ratio: None };
    edited.inference_context_ratio = 1.0;
    edited.save(&RunDir(pixel.clone()).config()).unwrap();
    let complete = |run: &Path, ratio: Option<f64>, name: &str| {
        let out = dir.path().join(name);
        let opts = ImputeOptions { ensemble: 3, context_ratio: ratio.map(Contexts::Ratio), ..Default::default() };
        impute(run, &data, &out, &opts, true).unwrap();
        Npz::open(&out).unwrap().get("mean").unwrap().unwrap().to_f32()
    };
    let whole = complete(&run, Some(1.0), "whole.npz");
    assert_eq!(whole, complete(&pixel, None, "pixel.npz"));
    let intersections = complete(&run, Some(0.0), "intersections.npz");
    assert_ne!(whole, intersections);
    // By default a Work II run chooses between the two on the data (`Contexts::Auto`).
    let by_default = complete(&run, None, "default.npz");
    assert!(by_default == whole || by_default == intersections);
}

/// `impute --context-ratio auto` scores both kinds of context on observed entries it hides,
/// never on the truth, uses the lower-scoring one for every field, and says what it measured.
#[test]
fn auto_contexts_choose_by_hidden_observations_not_truth() {
    use crate::data::npy::Npz;
    use crate::data::{FieldSet, Truth};
    use crate::run::impute::{impute, Contexts, ImputeOptions};
    let dir = tempfile::tempdir().unwrap();
    let (data, cfg) = small_work_ii_run(dir.path(), PartitionKind::Intersect);
    let run = dir.path().join("run");
    train(&data, &run, &cfg, false, true).unwrap();
    let complete = |data: &Path, contexts: Contexts, name: &str| {
        let out = dir.path().join(name);
        let opts = ImputeOptions { ensemble: 3, context_ratio: Some(contexts), ..Default::default() };
        let summary = impute(&run, data, &out, &opts, true).unwrap();
        (summary.contexts, Npz::open(&out).unwrap().get("mean").unwrap().unwrap().to_f32())
    };
    let (choice, auto) = complete(&data, Contexts::Auto, "auto.npz");
    let choice = choice.expect("auto reports its choice");
    assert!(choice.whole.is_finite() && choice.rule.is_finite() && choice.whole > 0.0 && choice.rule > 0.0);
    assert_ne!(choice.whole, choice.rule, "the two kinds of context complete differently");
    assert!(choice.hidden_entries > 0 && choice.fields > 0);
    assert_eq!(choice.ratio, if choice.whole < choice.rule { 1.0 } else { 0.0 });
    let (none, explicit) = complete(&data, Contexts::Ratio(choice.ratio), "explicit.npz");
    assert!(none.is_none());
    assert_eq!(auto, explicit, "auto imputes with the contexts it chose");
    // Another truth (the file's `truth` array) changes nothing: only observations are scored.
    let mut set = FieldSet::load(&data, Truth::IfPresent).unwrap();
    let truth = set.truth.as_mut().expect("synthetic fields carry their truth");
    truth.iter_mut().for_each(|v| *v = -3.0 * *v + 5.0);
    let other = dir.path().join("other-truth.npz");
    set.save(&other).unwrap();
    let (again, _) = complete(&other, Contexts::Auto, "auto-other.npz");
    let again = again.unwrap();
    assert_eq!((again.whole, again.rule, again.ratio), (choice.whole, choice.rule, choice.ratio));
}
