use super::*;

#[test]
fn npy_round_trip_f32_and_bool() {
    let a = Array::from_f32(vec![2, 3], &[1.0, -2.5, 3.0, f32::NAN, 0.0, 7.0]);
    let b = Array::from_npy_bytes(&a.to_npy_bytes()).unwrap();
    assert_eq!(b.shape, vec![2, 3]);
    let v = b.to_f32();
    assert_eq!(v[1], -2.5);
    assert!(v[3].is_nan());
    let m = Array::from_bool(vec![4], &[1, 0, 1, 1]);
    let m2 = Array::from_npy_bytes(&m.to_npy_bytes()).unwrap();
    assert_eq!(m2.dtype, Dtype::Bool);
    assert_eq!(m2.to_f32(), vec![1.0, 0.0, 1.0, 1.0]);
}

#[test]
fn streamed_write_and_read_match_whole_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.npz");
    let mut w = NpzWriter::new(&p);
    let a = w.add_f32("values", vec![3, 2]).unwrap();
    let m = w.add_bool("mask", vec![3, 2]).unwrap();
    for i in 0..3 {
        w.append_f32(a, &[i as f32, -(i as f32)]).unwrap();
        w.append_bool(m, &[1, (i % 2) as u8]).unwrap();
    }
    w.finish().unwrap();
    let mut npz = Npz::open(&p).unwrap();
    assert_eq!(npz.get("values").unwrap().unwrap().to_f32(), vec![0.0, -0.0, 1.0, -1.0, 2.0, -2.0]);
    let mut r = npz.stream("mask").unwrap().unwrap();
    assert_eq!(r.shape, vec![3, 2]);
    assert_eq!(r.read_f32(4).unwrap(), vec![1.0, 0.0, 1.0, 1.0]);
    assert_eq!(r.read_f32(4).unwrap(), vec![1.0, 0.0]);
    assert!(std::fs::read_dir(dir.path()).unwrap().count() == 1, "temporary files left behind");
}

#[test]
fn header_is_64_byte_aligned() {
    let a = Array::from_f32(vec![5], &[0.0; 5]);
    let bytes = a.to_npy_bytes();
    assert_eq!((bytes.len() - 20) % 64, 0);
}

/// A version-1 `.npy` file with a hand-written header (for layouts our writer never makes).
fn npy_v1(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

#[test]
fn parses_big_endian_f64_in_fortran_order() {
    // numpy: np.asfortranarray(np.arange(6, dtype='>f8').reshape(2, 3))
    // Fortran order: column by column: 0,3,1,4,2,5
    let data: Vec<u8> = [0.0f64, 3.0, 1.0, 4.0, 2.0, 5.0].iter().flat_map(|v| v.to_be_bytes()).collect();
    let bytes = npy_v1("{'descr': '>f8', 'fortran_order': True, 'shape': (2, 3), }", &data);
    let a = Array::from_npy_bytes(&bytes).unwrap();
    assert_eq!(a.to_f32(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn fortran_order_arrays_stream_in_c_order() {
    let data: Vec<u8> = [0.0f32, 3.0, 1.0, 4.0, 2.0, 5.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let bytes = npy_v1("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", &data);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f.npz");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
    zip.start_file("values.npy", zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(&bytes).unwrap();
    zip.finish().unwrap();
    let mut r = Npz::open(&p).unwrap().stream("values").unwrap().unwrap();
    assert_eq!(r.read_f32(6).unwrap(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for n in 0..200usize {
        let junk: Vec<u8> = (0..n).map(|i| (i * 131 % 251) as u8).collect();
        let _ = Array::from_npy_bytes(&junk);
        let mut header = b"\x93NUMPY\x01\x00".to_vec();
        header.extend_from_slice(&junk);
        let _ = Array::from_npy_bytes(&header);
    }
    let truncated = Array::from_f32(vec![100], &[1.0; 100]).to_npy_bytes();
    let err = Array::from_npy_bytes(&truncated[..200]).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
}
