use super::*;

fn write(path: &Path, arrays: Vec<(&str, Array)>) {
    let map = arrays.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    super::super::npy::write_npz(path, &map).unwrap();
}

#[test]
fn infers_mask_from_finite_values_and_broadcasts_channels() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.npz");
    write(&p, vec![("values", Array::from_f32(vec![1, 2, 1, 2], &[1.0, f32::NAN, 3.0, 4.0]))]);
    let f = FieldSet::load(&p, Truth::Never).unwrap();
    assert_eq!(f.mask, vec![1, 0, 1, 1]);
    assert_eq!(f.values[1], 0.0);

    write(
        &p,
        vec![
            ("values", Array::from_f32(vec![1, 2, 1, 2], &[1.0, 2.0, 3.0, 4.0])),
            ("mask", Array::from_bool(vec![1, 1, 1, 2], &[1, 0])),
        ],
    );
    let f = FieldSet::load(&p, Truth::Never).unwrap();
    assert_eq!(f.mask, vec![1, 0, 1, 0]);
}

fn load_err(arrays: Vec<(&str, Array)>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.npz");
    write(&p, arrays);
    format!("{:#}", FieldSet::load(&p, Truth::IfPresent).unwrap_err())
}

#[test]
fn bad_inputs_are_named_errors() {
    let v = || Array::from_f32(vec![2, 1, 2, 2], &[1.0; 8]);
    let e = load_err(vec![("values", Array::from_f32(vec![8], &[1.0; 8]))]);
    assert!(e.contains("'values'") && e.contains("shape"), "{e}");
    let e = load_err(vec![("values", v()), ("mask", Array::from_bool(vec![2, 1, 3, 2], &[1; 12]))]);
    assert!(e.contains("'mask'") && e.contains("shape"), "{e}");
    let mut nan = vec![1.0; 8];
    nan[5] = f32::NAN;
    let e = load_err(vec![
        ("values", Array::from_f32(vec![2, 1, 2, 2], &nan)),
        ("mask", Array::from_bool(vec![2, 1, 2, 2], &[1; 8])),
    ]);
    assert!(e.contains("non-finite") && e.contains("sample 1"), "{e}");
    let e = load_err(vec![("values", v()), ("mask", Array::from_bool(vec![2, 1, 2, 2], &[0; 8]))]);
    assert!(e.contains("observes nothing"), "{e}");
    let e = load_err(vec![("values", v()), ("mask", Array::from_bool(vec![2, 1, 2, 2], &[1, 1, 1, 1, 0, 0, 0, 0]))]);
    assert!(e.contains("sample 1"), "{e}");
    let e = load_err(vec![("mask", Array::from_bool(vec![2, 1, 2, 2], &[1; 8]))]);
    assert!(e.contains("no 'values'"), "{e}");
    let e = load_err(vec![("values", v()), ("mask", Array::from_f32(vec![2, 1, 2, 2], &[0.5; 8]))]);
    assert!(e.contains("0/1"), "{e}");
    let e = load_err(vec![("values", v()), ("static_mask", Array::from_bool(vec![3, 2], &[1; 6]))]);
    assert!(e.contains("'static_mask'") && e.contains("shape"), "{e}");
    let e = load_err(vec![("values", v()), ("static_mask", Array::from_bool(vec![2, 2], &[0; 4]))]);
    assert!(e.contains("never-observable"), "{e}");
}

/// A static mask per field (tiles of a coast) survives load, chunked streaming, selection
/// and save; an all-land field is a named error.
#[test]
fn per_field_static_masks_follow_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tiles.npz");
    // Three 1×2×2 fields; land: field 0 none, field 1 entry 0, field 2 entries 2 and 3.
    let ok = [1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0];
    write(
        &p,
        vec![
            ("values", Array::from_f32(vec![3, 1, 2, 2], &[1.0; 12])),
            ("static_mask", Array::from_bool(vec![3, 1, 2, 2], &ok)),
        ],
    );
    let set = FieldSet::load(&p, Truth::Never).unwrap();
    assert_eq!(set.mask, ok, "observations on each field's land are dropped");
    assert!(set.observable_per_field() && !set.is_observable(4) && set.is_observable(0));
    let mut stream = FieldStream::open(&p).unwrap();
    stream.next_chunk(1).unwrap();
    let rest = stream.next_chunk(2).unwrap().unwrap();
    assert_eq!(rest.observable.as_deref(), Some(&ok[4..]), "a chunk carries its own fields' static masks");
    let picked = set.select(&[2, 0]);
    assert_eq!(picked.observable.as_deref(), Some(&[1, 1, 0, 0, 1, 1, 1, 1][..]));
    let q = dir.path().join("picked.npz");
    picked.save(&q).unwrap();
    assert_eq!(FieldSet::load(&q, Truth::Never).unwrap().observable, picked.observable);
    let mut all_land = ok;
    all_land[..4].fill(0);
    let e = load_err(vec![
        ("values", Array::from_f32(vec![3, 1, 2, 2], &[1.0; 12])),
        ("static_mask", Array::from_bool(vec![3, 1, 2, 2], &all_land)),
    ]);
    assert!(e.contains("field 0") && e.contains("never-observable"), "{e}");
    let e = load_err(vec![
        ("values", Array::from_f32(vec![3, 1, 2, 2], &[1.0; 12])),
        ("static_mask", Array::from_bool(vec![2, 1, 2, 2], &ok[..8])),
    ]);
    assert!(e.contains("'static_mask'") && e.contains("[3, 1|1, 2, 2]"), "{e}");
}

/// Trajectories `[N, T, C, H, W]`: masks static in time (`[N, 1, 1|C, H, W]`) or per frame
/// broadcast to every frame and channel, a spatial static mask to every frame, and a save
/// that loads back the same.
#[test]
fn trajectories_load_broadcast_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("traj.npz");
    // 2 samples × 3 frames × 2 channels × 1×2 sites.
    let (n, t, c) = (2, 3, 2);
    let values: Vec<f32> = (0..n * t * c * 2).map(|v| v as f32).collect();
    let sensors = [1u8, 0, 0, 1]; // [N, 1, 1, 1, 2]: site 0 in sample 0, site 1 in sample 1
    write(
        &p,
        vec![
            ("values", Array::from_f32(vec![n, t, c, 1, 2], &values)),
            ("mask", Array::from_bool(vec![n, 1, 1, 1, 2], &sensors)),
            ("static_mask", Array::from_bool(vec![1, 2], &[1, 1])),
        ],
    );
    let set = FieldSet::load(&p, Truth::Never).unwrap();
    assert_eq!(set.dims, Dims { t: 3, c: 2, h: 1, w: 2 });
    assert_eq!(set.dims.planes(), 6);
    let expect: Vec<u8> = (0..n).flat_map(|i| (0..t * c).flat_map(move |_| [1 - i as u8, i as u8])).collect();
    assert_eq!(set.mask, expect, "a [N, 1, 1, H, W] mask holds in every frame and channel");
    assert_eq!(set.observable.as_ref().map(Vec::len), Some(set.dims.len()));
    let q = dir.path().join("back.npz");
    set.save(&q).unwrap();
    let back = FieldSet::load(&q, Truth::Never).unwrap();
    assert_eq!((back.dims, &back.mask, &back.values), (set.dims, &set.mask, &set.values));
    let shape = Npz::open(&q).unwrap().get("values").unwrap().unwrap().shape;
    assert_eq!(shape, vec![2, 3, 2, 1, 2]);

    // A mask per frame ([N, T, 1, H, W]) is kept per frame, shared by channels.
    let per_frame = [1u8, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1];
    write(
        &p,
        vec![
            ("values", Array::from_f32(vec![n, t, c, 1, 2], &values)),
            ("mask", Array::from_bool(vec![n, t, 1, 1, 2], &per_frame)),
        ],
    );
    let set = FieldSet::load(&p, Truth::Never).unwrap();
    let expect: Vec<u8> = per_frame.chunks(2).flat_map(|f| [f, f].concat()).collect();
    assert_eq!(set.mask, expect);

    // A 4-D mask for 5-D values is a named error.
    let e = load_err(vec![
        ("values", Array::from_f32(vec![n, t, c, 1, 2], &values)),
        ("mask", Array::from_bool(vec![n, 1, 1, 2], &sensors)),
    ]);
    assert!(e.contains("'mask'") && e.contains("[2, 1|3, 1|2, 1, 2]"), "{e}");
}

#[test]
fn corrupt_archive_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.npz");
    std::fs::write(&p, b"PK\x03\x04garbage").unwrap();
    let e = format!("{:#}", FieldSet::load(&p, Truth::Never).unwrap_err());
    assert!(e.contains("c.npz"), "{e}");
}
