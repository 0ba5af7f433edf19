//! Properties of the UDP sequence tracker over arbitrary arrival sequences:
//! datagrams 0..n, some lost, some duplicated, some late, some numbers
//! never sent, in any order; checked against counts made while generating
//! them and against naive (quadratic) readings of RFC 4737 and RFC 3357.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use transbench_analysis::seq::{analyse, early_flags, Arrival};

const MS: u64 = 1_000_000;
const WAIT_NS: u64 = 50 * MS;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        rng_seed: RngSeed::Fixed(0x0073_6571_7072_6f70),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Datagram `seq`'s copies as generated: how many arrive, and each one's
/// one-way delay (beyond the wait: late, counted lost).
#[derive(Debug, Clone)]
struct Fate {
    delays_ns: Vec<u64>,
}

fn fates() -> impl Strategy<Value = Vec<Fate>> {
    let delay = prop_oneof![8 => 0..=WAIT_NS, 1 => WAIT_NS + 1..=3 * WAIT_NS];
    let copies = prop_oneof![2 => Just(0usize), 6 => Just(1usize), 2 => 2usize..=3];
    let fate = (copies, proptest::array::uniform3(delay)).prop_map(|(k, delays)| Fate {
        delays_ns: delays[..k].to_vec(),
    });
    proptest::collection::vec(fate, 0..=120)
}

/// Every copy of every datagram (sent 1 ms apart), plus `unknown` arrivals
/// numbered at or past `n`, in generation order.
fn arrivals_of(fates: &[Fate], unknown: &[(u64, u64)]) -> Vec<Arrival> {
    let n = fates.len() as u64;
    let mut all: Vec<Arrival> = fates
        .iter()
        .enumerate()
        .flat_map(|(seq, f)| {
            f.delays_ns.iter().map(move |&d| Arrival {
                seq: seq as u64,
                sent_ns: seq as u64 * MS,
                received_ns: seq as u64 * MS + d,
            })
        })
        .collect();
    all.extend(unknown.iter().map(|&(above, at)| Arrival {
        seq: n + above,
        sent_ns: at,
        received_ns: at + MS,
    }));
    all
}

/// Counts known from the generation: distinct datagrams with a copy in
/// time, and in-time copies beyond the first.
fn injected(fates: &[Fate]) -> (u64, u64) {
    let in_time = |f: &Fate| f.delays_ns.iter().filter(|&&d| d <= WAIT_NS).count() as u64;
    let received = fates.iter().filter(|f| in_time(f) > 0).count() as u64;
    let dups = fates.iter().map(|f| in_time(f).saturating_sub(1)).sum();
    (received, dups)
}

/// The distinct datagrams counted, in arrival order (first in-time copy).
fn first_copies(n: u64, arrivals: &[Arrival]) -> Vec<u64> {
    let mut seen = std::collections::HashSet::new();
    arrivals
        .iter()
        .filter(|a| a.seq < n && a.received_ns - a.sent_ns <= WAIT_NS)
        .filter(|a| seen.insert(a.seq))
        .map(|a| a.seq)
        .collect()
}

/// RFC 4737, read naively: a datagram is reordered if any earlier arrival
/// has a higher number; its extent is how far back the first such one is.
fn naive_extents(order: &[u64]) -> Vec<u64> {
    (0..order.len())
        .filter_map(|i| (0..i).find(|&j| order[j] > order[i]).map(|j| (i - j) as u64))
        .collect()
}

/// RFC 3357, read naively: runs of consecutive numbers never counted.
fn naive_bursts(n: u64, order: &[u64]) -> BTreeMap<u64, u64> {
    let got: std::collections::HashSet<u64> = order.iter().copied().collect();
    let mut bursts = BTreeMap::new();
    let mut run = 0;
    for seq in 0..=n {
        if seq < n && !got.contains(&seq) {
            run += 1;
        } else if run > 0 {
            *bursts.entry(run).or_insert(0) += 1;
            run = 0;
        }
    }
    bursts
}

fn close(ratio: f64, count: u64, of: u64) -> bool {
    (ratio * of as f64 - count as f64).abs() < 1e-6
}

proptest! {
    #![proptest_config(config())]

    // Received + lost = sent, duplicates as injected, reordering and loss
    // bursts as RFC 4737 and RFC 3357 define them, ratios in [0, 1], and
    // numbers never sent ignored, whatever the arrival order.
    #[test]
    fn counts_add_up_whatever_the_arrival_order(
        (fates, arrivals) in fates()
            .prop_flat_map(|fates| {
                let unknown = proptest::collection::vec((0u64..5, 0..200 * MS), 0..=4);
                (Just(fates), unknown)
            })
            .prop_flat_map(|(fates, unknown)| {
                let all = arrivals_of(&fates, &unknown);
                (Just(fates), Just(all).prop_shuffle())
            }),
    ) {
        let n = fates.len() as u64;
        let m = analyse(n, WAIT_NS, &arrivals);
        let (received, dups) = injected(&fates);
        let lost = n - received;

        prop_assert_eq!(m.sent, n);
        prop_assert_eq!(m.received, received);
        prop_assert!(close(m.loss_ratio, lost, n), "loss ratio {} for {} of {}", m.loss_ratio, lost, n);
        prop_assert!(close(m.dup_ratio, dups, n), "dup ratio {} for {} of {}", m.dup_ratio, dups, n);

        for r in [m.loss_ratio, m.reorder_ratio, m.early_ratio] {
            prop_assert!((0.0..=1.0).contains(&r), "ratio {}", r);
        }
        let order = first_copies(n, &arrivals);
        let extents = naive_extents(&order);
        prop_assert!(close(m.reorder_ratio, extents.len() as u64, received));
        prop_assert_eq!(&m.reorder_extents, &extents);
        prop_assert!(m.reorder_extents.iter().all(|&e| e >= 1));
        let early = (0..order.len())
            .filter(|&i| order[i + 1..].iter().any(|&later| later < order[i]))
            .count() as u64;
        prop_assert_eq!(early_flags(&order).iter().filter(|&&e| e).count() as u64, early);
        prop_assert!(close(m.early_ratio, early, received));

        let bursts = naive_bursts(n, &order);
        prop_assert_eq!(m.loss_bursts.iter().map(|(len, k)| len * k).sum::<u64>(), lost);
        prop_assert_eq!(&m.loss_bursts, &bursts);

        let known: Vec<Arrival> = arrivals.iter().copied().filter(|a| a.seq < n).collect();
        prop_assert_eq!(&analyse(n, WAIT_NS, &known), &m, "numbers never sent changed the result");
    }

    // Arrivals in sending order (with losses and duplicates) have no
    // reordering at all.
    #[test]
    fn in_order_arrivals_are_not_reordered(fates in fates()) {
        let n = fates.len() as u64;
        // Copies of one datagram arrive together; datagrams in order.
        let arrivals = arrivals_of(&fates, &[]);
        let m = analyse(n, WAIT_NS, &arrivals);
        prop_assert_eq!(m.reorder_ratio, 0.0);
        prop_assert_eq!(m.early_ratio, 0.0);
        prop_assert!(m.reorder_extents.is_empty());
        prop_assert_eq!(m.received, injected(&fates).0);
    }
}
