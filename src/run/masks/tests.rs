use super::*;

#[test]
fn context_share_counts_the_observed_sites_a_draw_keeps() {
    let masks = vec![vec![1, 1, 0, 0], vec![1, 1, 1, 1]];
    let draws = vec![vec![1, 0, 1, 1], vec![0, 0, 0, 0]];
    assert_eq!(context_share(&masks, &draws), 1.0 / 6.0);
    assert_eq!(context_share(&[vec![0, 0]], &[vec![1, 1]]), 0.0, "nothing observed: no share");
}

#[test]
fn mask_statistics_of_known_masks() {
    // A checkerboard: half observed, neighbours always differ (correlation −1 at lag 1, +1 at
    // lag 2), every missing site its own region.
    let board: Vec<u8> = (0..64).map(|k| u8::from((k / 8 + k % 8) % 2 == 0)).collect();
    let s = mask_stats(&[board.clone(), board], 8, 8);
    assert_eq!((s.fraction_mean, s.fraction_sd), (0.5, 0.0));
    assert!((s.correlation[0] + 1.0).abs() < 1e-9 && (s.correlation[1] - 1.0).abs() < 1e-9, "{:?}", s.correlation);
    assert_eq!((s.missing_regions, s.missing_region_size), (32.0, 1.0));
    // Left half missing in one mask, all observed in the other: one region of 32 sites.
    let half: Vec<u8> = (0..64).map(|k| u8::from(k % 8 >= 4)).collect();
    let s = mask_stats(&[half, vec![1; 64]], 8, 8);
    assert_eq!((s.fraction_mean, s.fraction_sd), (0.75, 0.25));
    assert_eq!((s.missing_regions, s.missing_region_size), (0.5, 32.0));
}

#[test]
fn comparison_flags_draws_outside_the_tolerance() {
    let stripes: Vec<Vec<u8>> = (0..4).map(|o| (0..256).map(|k| u8::from((k % 16 + o) % 8 < 4)).collect()).collect();
    assert!(compare(&stripes, &stripes, 16, 16).within);
    let denser: Vec<Vec<u8>> = (0..4).map(|o| (0..256).map(|k| u8::from((k % 16 + o) % 8 < 6)).collect()).collect();
    let c = compare(&stripes, &denser, 16, 16);
    assert!(!c.within && c.fraction_mean_diff > FRACTION_TOL, "{c:?}");
}
