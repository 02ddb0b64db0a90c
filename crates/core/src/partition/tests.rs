//! The theory of spec §9 (T1 positivity and balance) checked by Monte Carlo, no training.
use super::*;
use crate::data::Pattern;
use rand::SeedableRng;
use std::collections::HashMap;

/// Issue 9: never-observable sites (static_mask) are dropped from the observations at load,
/// so no partition ever puts them in a context or a query (the loss is a sum over queries).
/// Checked with one static mask for every field and with one per field (tiles of a coast).
#[test]
fn never_observable_sites_are_in_no_context_and_no_query() {
    let d = Dims { t: 1, c: 2, h: 9, w: 9 };
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let n = 20;
    // Land is a third of the columns: the left third for every field, or a band that moves.
    let shared: Vec<u8> = (0..d.len()).map(|k| u8::from(k % 9 >= 3)).collect();
    let moving: Vec<u8> = (0..n * d.len()).map(|j| u8::from((j % 9 + j / d.len()) % 9 >= 3)).collect();
    for ok in [shared, moving] {
        // The file claims everything observed.
        let mut set = crate::data::FieldSet::new(n, d, vec![1.0; n * d.len()], vec![1; n * d.len()], None).unwrap();
        let dropped = set.set_observable(ok.clone()).unwrap();
        assert_eq!(dropped, n * d.len() / 3);
        let observable = |i: usize, k: usize| set.is_observable(i * d.len() + k);
        let parts = [
            Partition::default(),
            Partition::Pixel { context_ratio: 0.5, query_ratio: Some(0.5) },
            Partition::Block { grid: 3, drop: 1 },
            Partition::MissDiff,
            Partition::Ambient { keep: 0.9 },
        ];
        for part in &parts {
            let mut queried = vec![0usize; n * d.len()];
            for i in 0..n {
                let m = &set.mask[i * d.len()..(i + 1) * d.len()];
                // Positivity per field: a 1-in-9 block needs a few hundred draws to be sure.
                for _ in 0..400 {
                    let sp = part.split(m, d, &mut rng).unwrap();
                    for k in 0..d.len() {
                        if !observable(i, k) {
                            let used = (sp.context[k], sp.query[k]);
                            assert_eq!(used, (0, 0), "{part:?} used never-observable site {k} of field {i}");
                        }
                        queried[i * d.len() + k] += sp.query[k] as usize;
                    }
                }
            }
            // Positivity over the observable sites only (the "valid dimension" of spec §9 T4).
            let missed = (0..n * d.len()).find(|&j| observable(j / d.len(), j % d.len()) && queried[j] == 0);
            assert!(missed.is_none(), "{part:?} never queried observable entry {missed:?}");
        }
    }
}

/// Issue 8: on trajectories under sensors static in time, the shared-over-time context
/// (one draw per site for all frames) keeps the snapshot theory: context and query stay
/// inside M, the context is the same in every frame, every observed entry is queried with
/// positive probability, and given the context every entry outside it keeps a positive
/// query probability (the context does not reveal which sites are missing). The official
/// per-frame draw almost reveals it: a site absent from every frame's context is then
/// nearly always unobserved.
#[test]
fn shared_over_time_contexts_keep_positivity_on_trajectories() {
    let dims = Dims { t: 4, c: 1, h: 2, w: 2 };
    let (frame, s) = (dims.frame().len(), dims.sites());
    let pattern = Pattern::Pixel { observed: 0.5 };
    let parts = [Partition::Pixel { context_ratio: 0.5, query_ratio: None }, Partition::Block { grid: 2, drop: 1 }];
    for part in &parts {
        let draw = Contexts { partition: part, dims, in_time: InTime::Shared };
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let mut queried = vec![0usize; dims.len()];
        let mut by_ctx: HashMap<Vec<u8>, (Vec<f64>, usize)> = HashMap::new();
        for _ in 0..20000 {
            let m = pattern.draw(dims, &mut rng);
            let sp = draw.split(&m, &mut rng).unwrap();
            for k in 0..dims.len() {
                assert!(sp.context[k] <= m[k] && sp.query[k] <= m[k], "{part:?}: outside M at {k}");
                assert_eq!(sp.context[k], sp.context[k % frame], "{part:?}: context differs between frames");
                assert_eq!(sp.query[k], sp.query[k % frame], "{part:?}: query differs between frames");
                queried[k] += sp.query[k] as usize;
            }
            let e = by_ctx.entry(sp.context.clone()).or_insert_with(|| (vec![0.0; dims.len()], 0));
            e.0.iter_mut().zip(&sp.query).for_each(|(a, &q)| *a += q as f64);
            e.1 += 1;
        }
        assert!(queried.iter().all(|&q| q > 0), "{part:?}: an entry was never queried: {queried:?}");
        // Given each (well-sampled) context, every entry outside it has P(query) > 0.
        for (ctx, (freq, count)) in by_ctx.iter().filter(|(_, (_, n))| *n >= 200) {
            for k in (0..dims.len()).filter(|&k| ctx[k] == 0) {
                assert!(freq[k] > 0.0, "{part:?}: context {ctx:?} never queries entry {k} ({count} draws)");
            }
        }
    }
    // P(site queried | in no frame's context). A site is observed with p = 8/15 (the 15
    // non-empty masks of 4 sites are equally likely) and then left out of the context with
    // 1/2 shared, (1/2)⁴ per frame: (8/15·q)/(8/15·q + 7/15) = 4/11 shared, 1/15 per frame.
    let part = Partition::Pixel { context_ratio: 0.5, query_ratio: None };
    let rate = |in_time| {
        let draw = Contexts { partition: &part, dims, in_time };
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (mut hidden, mut queried) = (0usize, 0usize);
        for _ in 0..20000 {
            let m = pattern.draw(dims, &mut rng);
            let sp = draw.split(&m, &mut rng).unwrap();
            for i in (0..s).filter(|&i| (0..dims.t).all(|t| sp.context[t * frame + i] == 0)) {
                hidden += 1;
                queried += sp.query[i] as usize;
            }
        }
        queried as f64 / hidden as f64
    };
    let (shared, per_frame) = (rate(InTime::Shared), rate(InTime::PerFrame));
    assert!((shared - 4.0 / 11.0).abs() < 0.02, "shared: {shared}");
    assert!((per_frame - 1.0 / 15.0).abs() < 0.015, "per frame: {per_frame}");
}

/// For each distinct context, the empirical query frequency of every site outside it:
/// an estimate of `P((M_qry)_i = 1 | M_ctx)`. Returns (per-context frequencies, draws).
fn conditional_query_probs(
    part: &Partition,
    pattern: &Pattern,
    dims: Dims,
    draws: usize,
    seed: u64,
) -> Vec<(Vec<u8>, Vec<f64>, usize)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut by_ctx: HashMap<Vec<u8>, (Vec<f64>, usize)> = HashMap::new();
    for _ in 0..draws {
        let m = pattern.draw(dims, &mut rng);
        let s = part.split(&m, dims, &mut rng).unwrap();
        let e = by_ctx.entry(s.context.clone()).or_insert_with(|| (vec![0.0; dims.len()], 0));
        for (acc, &q) in e.0.iter_mut().zip(&s.query) {
            *acc += q as f64;
        }
        e.1 += 1;
    }
    by_ctx.into_iter().map(|(c, (q, n))| (c, q.iter().map(|v| v / n as f64).collect(), n)).collect()
}

#[test]
fn block_partition_is_positive_and_balanced() {
    let dims = Dims { t: 1, c: 1, h: 6, w: 6 };
    for (missing, want) in [(1usize, 0.5), (4, 0.2), (6, 1.0 / 7.0)] {
        let pattern = Pattern::Block { grid: 3, missing };
        let part = Partition::Block { grid: 3, drop: 1 };
        let groups = conditional_query_probs(&part, &pattern, dims, 60_000, missing as u64);
        let mut checked = 0;
        for (ctx, q, n) in groups {
            if n < 200 {
                continue;
            }
            for i in 0..dims.len() {
                if ctx[i] == 0 {
                    assert!(
                        (q[i] - want).abs() < 0.08,
                        "missing {missing}: site {i} p = {} (want {want}, n = {n})",
                        q[i]
                    );
                    checked += 1;
                } else {
                    assert_eq!(q[i], 0.0, "a context site was queried");
                }
            }
        }
        assert!(checked > 0);
    }
}

#[test]
fn pixel_partition_is_positive_everywhere_outside_the_context() {
    // 3×3 grid, p = 0.5, r = 0.7: P(q_i | ctx) = p(1−r)/(1−pr) = 0.15/0.65 for every site off the context.
    let dims = Dims { t: 1, c: 1, h: 3, w: 3 };
    let want = 0.5 * 0.3 / (1.0 - 0.35);
    let groups = conditional_query_probs(&Partition::default(), &Pattern::Pixel { observed: 0.5 }, dims, 200_000, 7);
    let mut checked = 0;
    for (ctx, q, n) in groups {
        if n < 400 {
            continue;
        }
        for i in 0..9 {
            if ctx[i] == 0 {
                assert!(q[i] > 0.0 && (q[i] - want).abs() < 0.08, "site {i}: {} vs {want} (n {n})", q[i]);
                checked += 1;
            }
        }
    }
    assert!(checked > 100);
}

#[test]
fn pixel_partition_never_queries_inside_missing_blocks() {
    // Under block observations a pixel context reveals which blocks are missing: sites in a
    // block without any context point get zero query probability with the pixel rule, but
    // positive probability with the block rule.
    let dims = Dims { t: 1, c: 1, h: 12, w: 12 };
    let g = BlockGrid::new(3, 12, 12);
    let pattern = Pattern::Block { grid: 3, missing: 2 };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (mut pixel_hits, mut block_hits, mut empty_sites) = (0usize, 0usize, 0usize);
    for _ in 0..3000 {
        let m = pattern.draw(dims, &mut rng);
        for (part, hits) in
            [(Partition::default(), &mut pixel_hits), (Partition::Block { grid: 3, drop: 1 }, &mut block_hits)]
        {
            let s = part.split(&m, dims, &mut rng).unwrap();
            for b in 0..9 {
                let mut blk = vec![0u8; 144];
                g.fill(b, &mut blk, 1);
                if (0..144).all(|i| blk[i] == 0 || s.context[i] == 0) {
                    let q: usize = (0..144).filter(|&i| blk[i] != 0 && s.query[i] != 0).count();
                    *hits += q;
                    empty_sites += (0..144).filter(|&i| blk[i] != 0).count();
                }
            }
        }
    }
    assert!(empty_sites > 0);
    assert_eq!(pixel_hits, 0, "pixel context queried a context-free block");
    assert!(block_hits > 0, "block context never queried a context-free block");
}

#[test]
fn splits_stay_inside_the_observation() {
    let dims = Dims { t: 1, c: 2, h: 10, w: 7 };
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for part in [
        Partition::default(),
        Partition::Pixel { context_ratio: 0.5, query_ratio: Some(0.5) },
        Partition::Block { grid: 3, drop: 2 },
        Partition::MissDiff,
        Partition::Ambient { keep: 0.9 },
    ] {
        for pattern in [Pattern::Pixel { observed: 0.3 }, Pattern::Block { grid: 3, missing: 3 }] {
            let m = pattern.draw(dims, &mut rng);
            let s = part.split(&m, dims, &mut rng).unwrap();
            for (k, &mk) in m.iter().enumerate() {
                assert!(s.context[k] <= mk && s.query[k] <= mk);
            }
            let r = part.random_context(&m, dims, &mut rng).unwrap();
            assert_eq!(r.len(), dims.len());
        }
    }
}

#[test]
fn ambient_queries_all_of_m_from_a_further_corrupted_context() {
    let dims = Dims { t: 1, c: 1, h: 30, w: 30 };
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let m = Pattern::Pixel { observed: 0.5 }.draw(dims, &mut rng);
    let (mut kept, mut seen) = (0usize, 0usize);
    for _ in 0..200 {
        let s = Partition::Ambient { keep: 0.9 }.split(&m, dims, &mut rng).unwrap();
        assert_eq!(s.query, m);
        kept += s.context.iter().filter(|&&v| v != 0).count();
        seen += m.iter().filter(|&&v| v != 0).count();
    }
    let rate = kept as f64 / seen as f64;
    assert!((rate - 0.9).abs() < 0.01, "{rate}");
}

/// Spec §9 T4: with `M_ctx = M1 ⊙ M2`, `M_qry = M1 ⊙ (1 − M_ctx)` and M1, M2 i.i.d. from a
/// mask distribution of known support, a site outside the context is queried with positive
/// probability exactly when some supported pair (a, b) with `a ⊙ b = M_ctx` has `a_i ≠ b_i`;
/// sites no mask ever observes (the left column: land) are never queried, and every site some
/// mask observes is queried under some context.
#[test]
fn intersection_is_positive_on_every_site_that_can_be_missing() {
    let dims = Dims { t: 1, c: 1, h: 4, w: 4 };
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    // Support: 6 random structured masks (rows and a square), land in column 0 never observed.
    let support: Vec<Vec<u8>> = (0..6)
        .map(|j| {
            (0..16)
                .map(|k| {
                    let (r, c) = (k / 4, k % 4);
                    u8::from(c > 0 && (r == j % 4 || (j >= 4 && r >= 2 && c >= 2) || (c + j) % 3 == 0))
                })
                .collect()
        })
        .collect();
    let part = Partition::Prior {
        prior: "unused".into(),
        rho: None,
        weight: None,
        draws: 1,
        guidance_loss: GuidanceLoss::All,
        guide_below: 1.0,
        bank: MaskBank::default(),
    };
    let Partition::Prior { bank, .. } = &part else { unreachable!() };
    bank.add_free(support.clone());
    // Which (context, site) pairs the theorem says are queryable.
    let mut expected: HashMap<Vec<u8>, Vec<bool>> = HashMap::new();
    for a in &support {
        for b in &support {
            let ctx: Vec<u8> = (0..16).map(|k| a[k] & b[k]).collect();
            let e = expected.entry(ctx).or_insert_with(|| vec![false; 16]);
            for k in 0..16 {
                e[k] |= a[k] != b[k];
            }
        }
    }
    let mut seen: HashMap<Vec<u8>, (Vec<usize>, usize)> = HashMap::new();
    for _ in 0..40_000 {
        let m1 = &support[rng.gen_range(0..support.len())];
        let sp = part.split(m1, dims, &mut rng).unwrap();
        let e = seen.entry(sp.context.clone()).or_insert_with(|| (vec![0; 16], 0));
        for k in 0..16 {
            e.0[k] += sp.query[k] as usize;
        }
        e.1 += 1;
    }
    let mut ever = vec![false; 16];
    for (ctx, (hits, n)) in &seen {
        let want = &expected[ctx];
        for k in 0..16 {
            assert_eq!(hits[k] > 0, want[k], "context {ctx:?} site {k}: {} queries in {n} draws", hits[k]);
            ever[k] |= hits[k] > 0;
            if k % 4 == 0 {
                assert_eq!(hits[k], 0, "land site {k} queried");
            }
        }
    }
    let observable: Vec<bool> = (0..16).map(|k| support.iter().any(|m| m[k] != 0)).collect();
    assert_eq!(ever, observable, "every site some mask observes is queried under some context");
    // The random context of the multi-step sampler is an intersection of two prior draws.
    let r = part.random_context(&support[0], dims, &mut rng).unwrap();
    assert!(expected.contains_key(&r));
}

/// The OSTIA failure in miniature: guidance drove every draw to all-missing, so the contexts
/// `M̂ ⊙ M` were empty. The guided partition's floor keeps at least ρ/2 of the observed sites
/// (and one for the query) on any mask, and leaves healthy draws exactly as drawn.
#[test]
fn guided_contexts_never_keep_less_than_half_the_anchor_share() {
    let dims = Dims { c: 1, t: 1, h: 16, w: 16 };
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for rho in [0.05, 0.2, 0.5, 0.9] {
        let part = Partition::Prior {
            prior: "unused".into(),
            rho: Some(rho),
            weight: None,
            draws: 1,
            guidance_loss: GuidanceLoss::All,
            guide_below: 1.0,
            bank: MaskBank::default(),
        };
        let Partition::Prior { bank, .. } = &part else { unreachable!() };
        // Masks from nearly empty to nearly full, including a single observed pair.
        for observed_share in [0.0078, 0.02, 0.1, 0.5, 0.95] {
            let mut m: Vec<u8> = (0..256).map(|_| u8::from(rng.gen::<f64>() < observed_share)).collect();
            m[0] = 1;
            m[1] = 1;
            let collapsed = vec![vec![0u8; 256]; 4];
            bank.add_guided(&m, collapsed);
            let n = m.iter().filter(|&&o| o != 0).count();
            for _ in 0..50 {
                let sp = part.split(&m, dims, &mut rng).unwrap();
                let kept = sp.context.iter().filter(|&&c| c != 0).count();
                let queried = sp.query.iter().filter(|&&q| q != 0).count();
                assert!(kept as f64 >= rho / 2.0 * n as f64, "ρ {rho}: context kept {kept} of {n} observed sites");
                assert!(queried >= 1, "ρ {rho}: empty query on {n} observed sites");
                assert!(sp.context.iter().zip(&m).all(|(&c, &o)| c <= o), "context outside M");
                assert_eq!(kept + queried, n, "context and query split M");
            }
        }
        // A draw above the floor is used as it is.
        let m: Vec<u8> = (0..256).map(|k| u8::from(k % 2 == 0)).collect();
        let healthy: Vec<u8> = (0..256).map(|k| u8::from(k % 4 == 0)).collect();
        bank.add_guided(&m, vec![healthy.clone()]);
        let sp = part.split(&m, dims, &mut rng).unwrap();
        assert_eq!(sp.context, healthy, "ρ {rho}: a draw keeping half of M was changed");
    }
}

/// A prior partition whose bank was never prepared is an error naming the missing step, not a panic.
#[test]
fn an_unprepared_prior_partition_is_an_error() {
    let dims = Dims { c: 1, t: 1, h: 4, w: 4 };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let m = vec![1u8; 16];
    for rho in [None, Some(0.2)] {
        let part = Partition::Prior {
            prior: "unused".into(),
            rho,
            weight: None,
            draws: 1,
            guidance_loss: GuidanceLoss::All,
            guide_below: 1.0,
            bank: MaskBank::default(),
        };
        let e = part.split(&m, dims, &mut rng).unwrap_err().to_string();
        assert!(e.contains("not prepared"), "{e}");
        assert!(part.random_context(&m, dims, &mut rng).is_err());
    }
}

/// K visits of a mask take its K guided draws in turn (no drawing with replacement): K ensemble
/// members see K distinct contexts, and visit K comes back to the first draw.
#[test]
fn visits_take_the_guided_draws_of_a_mask_in_turn() {
    let dims = Dims { c: 1, t: 1, h: 4, w: 4 };
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let m = vec![1u8; 16];
    let part = Partition::Prior {
        prior: "unused".into(),
        rho: Some(0.2),
        weight: None,
        draws: 5,
        guidance_loss: GuidanceLoss::All,
        guide_below: 1.0,
        bank: MaskBank::default(),
    };
    let Partition::Prior { bank, .. } = &part else { unreachable!() };
    // Five distinct draws, each keeping 12 or 13 of the 16 sites (above the ρ/2 floor).
    let draws: Vec<Vec<u8>> = (0..5).map(|j| (0..16).map(|k| u8::from(k % 5 != j)).collect()).collect();
    bank.add_guided(&m, draws.clone());
    let contexts: Vec<Vec<u8>> =
        (0..5).map(|v| part.split_visit(&m, dims, Some(v), &mut rng).unwrap().context).collect();
    assert_eq!(contexts, draws);
    assert_eq!(part.split_visit(&m, dims, Some(5), &mut rng).unwrap().context, draws[0]);
}
