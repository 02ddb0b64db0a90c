use super::*;

/// The published inputs (`1000·t`, planes `[mask, context]` per frame), as the method
/// layer's legacy parameterisation assembles them.
trait Published {
    fn forward(&self, t: &Tensor, context: &Tensor, mask: &Tensor) -> Tensor;
}

impl Published for UNet {
    fn forward(&self, t: &Tensor, context: &Tensor, mask: &Tensor) -> Tensor {
        let (b, tc, h, w) = context.size4().unwrap();
        let frames = tc / self.out_channels;
        let input = Tensor::stack(&[mask, context], 1)
            .view([b, 2, frames, self.out_channels, h, w])
            .permute([0, 2, 1, 3, 4, 5])
            .reshape([b, frames * 2 * self.out_channels, h, w]);
        self.forward_raw(&(t * 1000.0), &input)
    }
}

#[test]
fn shapes_round_trip_for_odd_sizes() {
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = UNetConfig { channels: 8, mults: vec![1, 2], ..Default::default() };
    let net = UNet::new(&vs.root(), 2, &cfg, false).unwrap();
    let x = Tensor::randn([3, 2, 13, 10], (Kind::Float, Device::Cpu));
    let t = Tensor::rand([3], (Kind::Float, Device::Cpu));
    let y = net.forward(&t, &x, &x.ones_like());
    assert_eq!(y.size(), vec![3, 2, 13, 10]);
}

/// The space-time network mixes frames (a change in frame 0 moves frame 2's output) once
/// its frame attention is trained away from zero; the snapshot network never does, and at
/// initialisation the two compute the same per-frame function.
#[test]
fn only_the_space_time_network_mixes_frames() {
    let cfg = UNetConfig { channels: 8, mults: vec![1, 2], ..Default::default() };
    let (b, t, c) = (2, 3, 2);
    let x = Tensor::randn([b, t * c, 8, 12], (Kind::Float, Device::Cpu));
    let m = x.rand_like().lt(0.5).to_kind(Kind::Float);
    let x2 = x.copy();
    let _ = x2.narrow(1, 0, c).fill_(3.0); // frame 0 of every sample changes
    let tt = Tensor::rand([b], (Kind::Float, Device::Cpu));
    let frame2_change = |net: &UNet| {
        let (y, y2) = tch::no_grad(|| (net.forward(&tt, &(&x * &m), &m), net.forward(&tt, &(&x2 * &m), &m)));
        assert_eq!(y.size(), vec![b, t * c, 8, 12]);
        (y - y2).narrow(1, 2 * c, c).abs().max().double_value(&[])
    };
    let vs_snap = nn::VarStore::new(Device::Cpu);
    let snapshot = UNet::new(&vs_snap.root(), c, &cfg, false).unwrap();
    let vs_st = nn::VarStore::new(Device::Cpu);
    let space_time = UNet::new(&vs_st.root(), c, &cfg, true).unwrap();
    assert!(space_time.is_space_time() && !snapshot.is_space_time());
    // Share the layers the two have in common by copying them, not by reseeding the global
    // generator: tests run in parallel threads that draw from it between the two builds.
    let shared = vs_snap.variables();
    let mut copied = 0;
    tch::no_grad(|| {
        for (name, mut v) in vs_st.variables() {
            if let Some(src) = shared.get(&name) {
                v.copy_(src);
                copied += 1;
            }
        }
    });
    assert_eq!(copied, shared.len(), "every snapshot layer exists in the space-time network");
    assert_eq!(frame2_change(&snapshot), 0.0);
    // Same shared layers, frame attention projecting from zero.
    let (a, b_) = tch::no_grad(|| (snapshot.forward(&tt, &x, &m), space_time.forward(&tt, &x, &m)));
    assert!((a - b_).abs().max().double_value(&[]) < 1e-5, "zero-initialised frame attention changed the output");
    tch::no_grad(|| {
        for (name, mut v) in vs_st.variables() {
            if name.starts_with("frames.") && name.contains("proj") {
                v.copy_(&(v.randn_like() * 0.3));
            }
        }
    });
    assert!(frame2_change(&space_time) > 1e-4, "the space-time network ignored the other frames");
}

#[test]
fn channels_last_weights_compute_the_same_function() {
    let vs = nn::VarStore::new(Device::Cpu);
    // Float32: the tolerance is float32's (bfloat16 kernels differ by memory order).
    let cfg = UNetConfig { precision: Precision::Float32, ..Default::default() };
    let net = UNet::new(&vs.root(), 1, &cfg, false).unwrap();
    let x = Tensor::randn([4, 1, 16, 16], (Kind::Float, Device::Cpu));
    let m = x.rand_like().lt(0.5).to_kind(Kind::Float);
    let t = Tensor::rand([4], (Kind::Float, Device::Cpu));
    let before = tch::no_grad(|| net.forward(&t, &(&x * &m), &m));
    prefer_channels_last(&vs);
    let w = vs.variables().into_iter().find(|(n, _)| n == "conv_in.weight").unwrap().1;
    assert_eq!(w.stride()[1], 1, "conv weights should be NHWC now: strides {:?}", w.stride());
    let after = tch::no_grad(|| net.forward(&t, &(&x * &m), &m));
    let diff = (before - after).abs().max().double_value(&[]);
    assert!(diff < 1e-4, "channels-last changed the output by {diff}");
}

#[test]
fn workers_compute_what_the_network_computes() {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = UNet::new(&vs.root(), 1, &UNetConfig::default(), false).unwrap();
    let workers = Workers::new(&vs, &net, 3).unwrap();
    // 37 rows: uneven split over 3 workers, several chunks per worker.
    let x = Tensor::randn([37, 1, 16, 16], (Kind::Float, Device::Cpu));
    let m = x.rand_like().lt(0.5).to_kind(Kind::Float);
    let t = Tensor::rand([37], (Kind::Float, Device::Cpu));
    let whole = tch::no_grad(|| net.forward(&t, &(&x * &m), &m));
    let threads = tch::get_num_threads();
    let split = workers.map_rows(&[&t, &(&x * &m), &m], |net, r| net.forward(&r[0], &r[1], &r[2])).unwrap();
    assert_eq!(tch::get_num_threads(), threads, "the intra-op thread count must be restored");
    let diff = (whole - split).abs().max().double_value(&[]);
    assert!(diff < 1e-4, "workers changed the output by {diff}");
}

/// A periodic network commutes with shifts of the torus by multiples of its coarsest
/// stride (circular padding everywhere, no border); a zero-padded one does not.
#[test]
fn a_periodic_network_commutes_with_shifts_of_the_torus() {
    tch::manual_seed(4);
    let cfg = UNetConfig { channels: 8, mults: vec![1, 2], attention: true, ..Default::default() };
    let x = Tensor::randn([2, 2, 8, 8], (Kind::Float, Device::Cpu));
    let t = Tensor::from_slice(&[10f32, 500.0]);
    let shift = |v: &Tensor| v.roll([2, -4], [2, 3]);
    for periodic in [true, false] {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = UNet::with_inputs(&vs.root(), 1, 2, &cfg, false, periodic).unwrap();
        // Non-zero output layer, so the output depends on the input.
        tch::no_grad(|| {
            for (name, mut v) in vs.variables() {
                if name.starts_with("conv_out.") {
                    v.copy_(&(v.randn_like() * 0.1));
                }
            }
        });
        let a = tch::no_grad(|| shift(&net.forward_raw(&t, &x)));
        let b = tch::no_grad(|| net.forward_raw(&t, &shift(&x)));
        let diff = (a - b).abs().max().double_value(&[]);
        if periodic {
            assert!(diff < 1e-4, "periodic network is not shift-equivariant: {diff}");
        } else {
            assert!(diff > 1e-3, "a zero-padded network should see the border");
        }
    }
}

/// In bfloat16 arithmetic the network computes the same function as in float32 to bfloat16's
/// resolution, returns float32, and passes float32 gradients to its float32 weights.
#[test]
fn bfloat16_forward_matches_float32_and_keeps_float32_weights() {
    let vs = nn::VarStore::new(Device::Cpu);
    let exact_cfg = UNetConfig { channels: 8, mults: vec![1, 2], precision: Precision::Float32, ..Default::default() };
    let exact = UNet::with_inputs(&vs.root(), 1, 3, &exact_cfg, false, true).unwrap();
    // The same weights (the same var store) under the other arithmetic.
    let low_cfg = UNetConfig { precision: Precision::Bfloat16, ..exact_cfg.clone() };
    let vs_low = nn::VarStore::new(Device::Cpu);
    let low = UNet::with_inputs(&vs_low.root(), 1, 3, &low_cfg, false, true).unwrap();
    tch::no_grad(|| {
        let src = vs.variables();
        for (name, mut v) in vs_low.variables() {
            // Zero-initialised output layers would make the comparison trivial.
            v.copy_(&(src[&name].randn_like() * 0.2));
        }
        for (name, mut v) in vs.variables() {
            v.copy_(&vs_low.variables()[&name]);
        }
    });
    assert_eq!((exact.precision(), low.precision()), (Precision::Float32, Precision::Bfloat16));
    let x = Tensor::randn([2, 3, 16, 16], (Kind::Float, Device::Cpu));
    let c = Tensor::rand([2], (Kind::Float, Device::Cpu));
    let (y, y_low) = tch::no_grad(|| (exact.forward_raw(&c, &x), low.forward_raw(&c, &x)));
    assert_eq!(y_low.kind(), Kind::Float);
    let rel = ((&y_low - &y).norm() / y.norm()).double_value(&[]);
    assert!(rel > 0.0 && rel < 0.05, "relative gap {rel}");
    low.forward_raw(&c, &x).square().mean(Kind::Float).backward();
    for (name, v) in vs_low.variables() {
        assert_eq!(v.grad().kind(), Kind::Float, "{name}");
        assert!(v.grad().isfinite().all().int64_value(&[]) == 1, "{name}");
    }
    // `auto` is bfloat16 exactly where the CPU has AMX-BF16.
    let auto_cfg = UNetConfig { precision: Precision::Auto, ..exact_cfg };
    let auto = UNet::with_inputs(&nn::VarStore::new(Device::Cpu).root(), 1, 3, &auto_cfg, false, true).unwrap();
    let expected = if crate::model::autocast::cpu_has_amx_bf16() { Precision::Bfloat16 } else { Precision::Float32 };
    assert_eq!(auto.precision(), expected);
}
