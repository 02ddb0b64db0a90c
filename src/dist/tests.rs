use super::*;
use std::collections::HashMap;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| map.get(k).cloned()
}

#[test]
fn a_single_process_needs_no_rendezvous() {
    let flags = GroupFlags::default();
    assert_eq!(Rendezvous::resolve(&flags, env_of(&[])).unwrap(), None);
    assert_eq!(Rendezvous::resolve(&flags, env_of(&[("WORLD_SIZE", "1"), ("RANK", "0")])).unwrap(), None);
    assert!(Rendezvous::resolve(&flags, env_of(&[("WORLD_SIZE", "0")])).is_err());
}

#[test]
fn torchrun_variables_give_the_rendezvous() {
    let env = env_of(&[
        ("WORLD_SIZE", "4"),
        ("RANK", "3"),
        ("LOCAL_RANK", "1"),
        ("MASTER_ADDR", "node7"),
        ("MASTER_PORT", "29400"),
    ]);
    let r = Rendezvous::resolve(&GroupFlags::default(), env).unwrap().unwrap();
    assert_eq!((r.host.as_str(), r.port, r.rank, r.world, r.local_rank), ("node7", 29400, 3, 4, 1));
}

#[test]
fn slurm_variables_stand_in_and_flags_override() {
    let env = env_of(&[("SLURM_NTASKS", "2"), ("SLURM_PROCID", "1"), ("SLURM_LOCALID", "1"), ("MASTER_ADDR", "n1")]);
    let r = Rendezvous::resolve(&GroupFlags::default(), &env).unwrap().unwrap();
    assert_eq!((r.rank, r.world, r.local_rank, r.port), (1, 2, 1, 29500));
    let flags = GroupFlags { world: Some(3), rank: Some(2), master: Some("10.0.0.1:1234".into()), timeout: None };
    let r = Rendezvous::resolve(&flags, &env).unwrap().unwrap();
    assert_eq!((r.host.as_str(), r.port, r.rank, r.world), ("10.0.0.1", 1234, 2, 3));
}

#[test]
fn bad_rendezvous_settings_are_named() {
    let err =
        |flags: GroupFlags, pairs: &[(&str, &str)]| Rendezvous::resolve(&flags, env_of(pairs)).unwrap_err().to_string();
    assert!(err(GroupFlags::default(), &[("WORLD_SIZE", "2"), ("MASTER_ADDR", "h")]).contains("rank"));
    assert!(err(GroupFlags::default(), &[("WORLD_SIZE", "2"), ("RANK", "2"), ("MASTER_ADDR", "h")]).contains("outside"));
    assert!(err(GroupFlags::default(), &[("WORLD_SIZE", "2"), ("RANK", "1")]).contains("MASTER_ADDR"));
    assert!(err(GroupFlags::default(), &[("WORLD_SIZE", "two")]).contains("WORLD_SIZE=two"));
    let flags = GroupFlags { world: Some(2), rank: Some(0), master: Some("nohost".into()), timeout: None };
    assert!(err(flags, &[]).contains("HOST:PORT"));
}

#[test]
fn shards_cover_the_batch_once() {
    let g = Group::single();
    assert_eq!(g.shard(16), (0, 16));
    assert_eq!((g.rank(), g.world(), g.is_leader()), (0, 1, true));
}

#[test]
fn buckets_round_trip_through_one_flat_tensor() {
    let parts = vec![
        Tensor::arange(6, (Kind::Float, tch::Device::Cpu)).view([2, 3]),
        Tensor::ones([4], (Kind::Float, tch::Device::Cpu)),
    ];
    let b = buckets(&parts);
    assert_eq!(b.len(), 1);
    let flat = Tensor::cat(&b[0].iter().map(|t| t.flatten(0, -1)).collect::<Vec<_>>(), 0) * 2.0;
    copy_back(&flat, &b[0]);
    assert_eq!(Vec::<f32>::try_from(parts[0].flatten(0, -1)).unwrap(), vec![0., 2., 4., 6., 8., 10.]);
    assert_eq!(Vec::<f32>::try_from(&parts[1]).unwrap(), vec![2.0; 4]);
}

#[test]
fn a_single_group_leaves_gradients_and_values_alone() {
    let g = Group::single();
    assert_eq!(g.sum_gradients(&[], &[1.5, 2.0]).unwrap(), vec![1.5, 2.0]);
    assert_eq!(g.leader_says(&[3.0]).unwrap(), vec![3.0]);
    g.barrier().unwrap();
}

/// Two ranks as two threads of this process, over loopback Gloo: sums, broadcasts, barriers.
#[test]
fn two_ranks_sum_and_broadcast_over_loopback() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ranks: Vec<_> = (0..2)
        .map(|rank| {
            std::thread::spawn(move || -> Result<(Vec<f64>, Vec<f32>, Vec<f64>)> {
                let r = Rendezvous {
                    host: "127.0.0.1".into(),
                    port,
                    rank,
                    world: 2,
                    local_rank: rank,
                    timeout: Duration::from_secs(30),
                    iface: None,
                };
                let g = Group::join(Some(&r))?;
                assert_eq!(g.shard(5), if rank == 0 { (0, 2) } else { (2, 5) });
                let w = Tensor::full([3], rank as f64 + 1.0, (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
                (&w * (rank as f64 + 1.0)).sum(Kind::Float).backward();
                let summed = g.sum_gradients(&[("w".into(), w.shallow_clone())], &[rank as f64 + 0.5])?;
                g.sync_from_leader(&[w.shallow_clone()])?;
                let said = g.leader_says(&[10.0 * (rank as f64 + 1.0)])?;
                g.barrier()?;
                let grad: Vec<f32> = Vec::try_from(w.grad())?;
                assert_eq!(grad, vec![3.0; 3]);
                Ok((summed, Vec::try_from(&w.detach())?, said))
            })
        })
        .collect();
    for h in ranks {
        let (summed, w, said) = h.join().unwrap().unwrap();
        assert_eq!(summed, vec![2.0]);
        assert_eq!(w, vec![1.0; 3], "rank 0's weights");
        assert_eq!(said, vec![10.0]);
    }
}
