//! Packet for packet against the kernel: with `seed N`, linkemu draws from
//! netem's own generator, seeded as netem seeds it, in netem's order, so
//! it should decide each packet's fate as Linux's netem did. The fixture
//! holds which of 5000 numbered datagrams a real Linux 6.12 netem dropped
//! and duplicated for seven seeded profiles (see its `source`; the whole
//! comparison is docs/fidelity-seed.md, made by netem-scripts/fidelity.sh).

use linkemu::{NetemSpec, Pipeline};

const MS: u64 = 1_000_000;

#[derive(serde::Deserialize)]
struct Fixture {
    profiles: Vec<Recorded>,
}

#[derive(serde::Deserialize)]
struct Recorded {
    netem: String,
    sent: u64,
    lost: Vec<u64>,
    copied: Vec<u64>,
}

#[test]
fn seeded_profiles_drop_and_copy_the_packets_linux_did() {
    let fixture: Fixture =
        serde_json::from_str(include_str!("fixtures/kernel-6.12-seeded.json")).expect("the fixture parses");
    assert_eq!(fixture.profiles.len(), 7);
    for r in &fixture.profiles {
        let spec = NetemSpec::parse(&r.netem).unwrap();
        assert!(spec.seed.is_some(), "{}", r.netem);
        // The pipeline's own seed must not matter: the profile's wins.
        let mut p = Pipeline::new(&spec, 1);
        let mut copies = vec![0u32; r.sent as usize];
        let mut take = |p: &mut Pipeline, now: u64| {
            while let Some(pkt) = p.dequeue(now) {
                copies[u64::from_be_bytes(pkt[..8].try_into().unwrap()) as usize] += 1;
            }
        };
        // One every 500 us, as the probe sent them; delays never decide a fate.
        for seq in 0..r.sent {
            take(&mut p, seq * MS / 2);
            let mut pkt = seq.to_be_bytes().to_vec();
            pkt.resize(64, 0);
            p.enqueue(pkt, seq * MS / 2);
        }
        take(&mut p, r.sent * MS);
        let lost: Vec<u64> = (0..r.sent).filter(|&s| copies[s as usize] == 0).collect();
        let copied: Vec<u64> = (0..r.sent).filter(|&s| copies[s as usize] > 1).collect();
        assert_eq!(lost, r.lost, "{}: the packets lost", r.netem);
        assert_eq!(copied, r.copied, "{}: the packets copied", r.netem);
    }
}
