//! Data-parallel training: two ranks over loopback Gloo train what one process trains with the
//! same global batch, a group resumes exactly, and a rank that dies stops the other with a
//! clear error, leaving a checkpoint that loads.

mod common;
use common::{fixture, step_losses, Child, Dir, TINY};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A port that was free a moment ago (the ranks' rendezvous).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `line` as rank `rank` of a two-rank group meeting on loopback at `port`, set up the way
/// torchrun sets it up (environment variables); one intra-op thread each on a 2-core machine.
fn rank_command(d: &Dir, line: &str, rank: usize, port: u16) -> Command {
    let mut c = d.command(line);
    c.env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .env("WORLD_SIZE", "2")
        .env("RANK", rank.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("OMP_NUM_THREADS", "1");
    c
}

/// Runs `line` as both ranks of a group; both must succeed.
fn group_ok(d: &Dir, line: &str) {
    let port = free_port();
    let ranks: Vec<_> = (0..2).map(|r| rank_command(d, line, r, port).spawn().unwrap()).collect();
    let outs: Vec<Output> = ranks.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for (r, o) in outs.iter().enumerate() {
        assert!(o.status.success(), "rank {r} of `{line}` failed: {}", String::from_utf8_lossy(&o.stderr));
    }
}

fn weights(path: &Path) -> Vec<(String, tch::Tensor)> {
    let mut w = tch::Tensor::read_safetensors(path).unwrap();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

/// Largest |a − b| over every tensor, relative to the largest |a|.
fn relative_gap(a: &[(String, tch::Tensor)], b: &[(String, tch::Tensor)]) -> f64 {
    assert_eq!(a.len(), b.len());
    let (mut gap, mut scale) = (0f64, 0f64);
    for ((na, ta), (nb, tb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        gap = gap.max((ta - tb).abs().max().double_value(&[]));
        scale = scale.max(ta.abs().max().double_value(&[]));
    }
    gap / scale
}

fn constant_lr(d: &Dir, name: &str, tiny: &str) {
    std::fs::write(d.p(name), format!("{tiny}lr_schedule = \"constant\"\n")).unwrap();
}

#[test]
fn two_ranks_train_what_one_process_trains_and_resume_as_a_group_exactly() {
    let f = fixture();
    // Batch 4 = 2 samples per rank; a constant learning rate so a run cut at step 10 and
    // resumed to 20 follows the uninterrupted schedule.
    // Float32: the tolerances below are float32 rounding's (`auto` is bfloat16 on AMX CPUs).
    let tiny = TINY.replace("steps = 12", "steps = 20").replace("[model]\n", "[model]\nprecision = \"float32\"\n");
    constant_lr(&f, "c.toml", &tiny);
    let train = |run: &str| format!("train --data {{d}}/train.npz --out {{d}}/{run} --config {{d}}/c.toml");
    f.ok(&train("one"));
    group_ok(&f, &train("two"));

    // Not bitwise: the group's gradient is the sum of two half-batch gradients, one process
    // sums the whole batch in another order. Adam divides by √v, so for weights whose
    // gradients are near zero a rounding difference moves the update by up to the learning
    // rate: the tolerance is what rounding alone gives, measured here as the gap between one
    // process at one and at two intra-op threads (about 3e-4 relative after 20 steps).
    let mut c = f.command(&train("one_thread"));
    assert!(c.env("OMP_NUM_THREADS", "1").status().unwrap().success());
    let w = |run: &str| weights(&f.p(&format!("{run}/model-last.safetensors")));
    let rounding = relative_gap(&w("one"), &w("one_thread")).max(1e-5);
    let gap = relative_gap(&w("one"), &w("two"));
    assert!(
        gap <= 10.0 * rounding,
        "two ranks drifted from one process by {gap:.2e}, rounding alone gives {rounding:.2e}"
    );
    // Losses and gradient norms (which Adam's scale invariance would hide) agree closely.
    let (one, two) = (step_metrics(&f.p("one")), step_metrics(&f.p("two")));
    assert_eq!(one.len(), 20);
    assert_eq!(two.len(), 20, "rank 0 logs every step once; rank 1 writes nothing");
    for ((s, a, ga), (_, b, gb)) in one.iter().zip(&two) {
        assert!((a - b).abs() <= 1e-3 * a.abs().max(1e-3), "step {s}: loss {a} alone, {b} in the group");
        assert!((ga - gb).abs() <= 1e-3 * ga.abs().max(1e-3), "step {s}: gradient norm {ga} alone, {gb} in the group");
    }
    let two = step_losses(&f.p("two"));
    // Only rank 0 wrote: the group's directory holds the files of one run.
    let files = |run: &str| {
        let mut v = common::walk(&f.p(run));
        v.sort();
        v
    };
    assert_eq!(files("one"), files("two"));

    // A group stopped at step 10 and resumed to 20 repeats the uninterrupted group run exactly.
    group_ok(&f, &(train("part") + " --steps 10"));
    group_ok(&f, "train --data {d}/train.npz --out {d}/part --resume --steps 20");
    assert_eq!(step_losses(&f.p("part")), two);
    assert!(
        common::tensors(&f.p("part/model-last.safetensors")) == common::tensors(&f.p("two/model-last.safetensors")),
        "the resumed group's weights differ from the uninterrupted group's"
    );
}

#[test]
fn a_rank_that_dies_stops_the_other_with_a_clear_error_and_the_checkpoint_loads() {
    for killed in [1, 0] {
        let f = fixture();
        let cfg = TINY
            .replace("steps = 12", "steps = 100000")
            .replace("checkpoint_every = 6", "checkpoint_every = 3")
            .replace("val_every = 6", "val_every = 1000000");
        constant_lr(&f, "long.toml", &cfg);
        let line = "train --data {d}/train.npz --out {d}/run --config {d}/long.toml --group-timeout 60s";
        let port = free_port();
        let mut ranks: Vec<Child> = (0..2)
            .map(|r| {
                let mut c = rank_command(&f, line, r, port);
                c.stderr(std::process::Stdio::piped());
                Child(c.spawn().unwrap())
            })
            .collect();
        let start = Instant::now();
        while !(f.p("run/checkpoint.safetensors").exists() && step_lines(&f.p("run")) >= 10) {
            assert!(start.elapsed() < Duration::from_secs(120), "the group made no progress");
            std::thread::sleep(Duration::from_millis(20));
        }
        ranks[killed].0.kill().unwrap(); // SIGKILL: no chance to say goodbye
        ranks[killed].0.wait().unwrap();
        let survivor = &mut ranks[1 - killed].0;
        let start = Instant::now();
        let status = loop {
            if let Some(s) = survivor.try_wait().unwrap() {
                break s;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "rank {} hangs after rank {killed} died", 1 - killed);
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(!status.success(), "rank {} went on after rank {killed} died", 1 - killed);
        let mut err = String::new();
        std::io::Read::read_to_string(survivor.stderr.as_mut().unwrap(), &mut err).unwrap();
        let last = err.lines().rfind(|l| l.starts_with("error: ")).unwrap_or_default();
        assert!(last.contains(&format!("rank {} of 2", 1 - killed)) && last.contains("peer"), "unclear error: {err}");
        drop(ranks);
        // The checkpoint on disk is whole: a single process resumes from it and imputes.
        let step = step_lines(&f.p("run"));
        f.ok(&format!("train --data {{d}}/train.npz --out {{d}}/run --resume --steps {}", step + 3));
        f.ok("impute --run {d}/run --data {d}/test.npz --out {d}/pred.npz --ensemble 2");
    }
}

/// (step, loss, gradient norm) of every training-step line of a run's metrics log.
fn step_metrics(run: &Path) -> Vec<(u64, f64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("loss").is_some())
        .map(|v| (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap(), v["grad_norm"].as_f64().unwrap()))
        .collect()
}

fn step_lines(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.jsonl")).map(|t| t.matches("\"loss\"").count()).unwrap_or(0)
}
