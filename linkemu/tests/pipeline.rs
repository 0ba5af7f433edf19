//! The pipeline against netem's semantics, with seeded randomness, a fake
//! clock and stated tolerances: 5 standard errors unless said otherwise
//! (a false failure about once in 1.7 million runs).

use linkemu::{NetemSpec, Pipeline};

const MS: u64 = 1_000_000;

fn pipeline(profile: &str) -> Pipeline {
    Pipeline::new(&NetemSpec::parse(profile).unwrap(), 42)
}

/// The index twice, so a corrupted one never passes for another packet.
fn packet(i: u64) -> Vec<u8> {
    let mut p = vec![0u8; 100];
    p[..8].copy_from_slice(&i.to_be_bytes());
    p[8..16].copy_from_slice(&i.to_be_bytes());
    p
}

fn is_pristine(p: &[u8]) -> bool {
    p == packet(index(p))
}

fn index(p: &[u8]) -> u64 {
    u64::from_be_bytes(p[..8].try_into().unwrap())
}

/// Feeds `n` packets `gap_ns` apart and drains everything: returns
/// (index, sent at, delivered at) per delivered packet, in delivery order.
fn run(p: &mut Pipeline, n: u64, gap_ns: u64) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    let drain = |p: &mut Pipeline, until: u64, out: &mut Vec<(u64, u64, u64)>| {
        while let Some(due) = p.next_due() {
            if due > until {
                break;
            }
            while let Some(pkt) = p.dequeue(due) {
                let i = index(&pkt);
                out.push((i, i.wrapping_mul(gap_ns), due));
            }
        }
    };
    for i in 0..n {
        let now = i * gap_ns;
        drain(p, now, &mut out);
        p.enqueue(packet(i), now);
    }
    drain(p, u64::MAX, &mut out);
    out
}

fn binomial_tolerance(n: u64, p: f64) -> f64 {
    5.0 * (n as f64 * p * (1.0 - p)).sqrt()
}

#[test]
fn random_loss_matches_its_probability() {
    let n = 100_000;
    let mut p = pipeline("loss 1%");
    let delivered = run(&mut p, n, MS).len() as f64;
    let lost = n as f64 - delivered;
    assert!((lost - 1000.0).abs() < binomial_tolerance(n, 0.01), "lost {lost}");
    assert_eq!(p.counters().dropped_loss as f64, lost);
}

#[test]
fn gilbert_elliott_mean_loss_and_burst_length_match_theory() {
    // Good->bad 1 %, bad->good 30 %, all lost in bad, none in good:
    // P(bad) = p/(p+r) = 1/31, bursts are geometric with mean 1/r = 3.33.
    let n = 500_000;
    let mut p = pipeline("loss gemodel 1% 30%");
    let delivered: std::collections::HashSet<u64> = run(&mut p, n, 1000).into_iter().map(|d| d.0).collect();
    let lost: Vec<bool> = (0..n).map(|i| !delivered.contains(&i)).collect();
    let rate = lost.iter().filter(|&&l| l).count() as f64 / n as f64;
    // ~4,800 bursts: the loss rate's relative sd is ~2 %; allow 10 %.
    assert!((rate - 1.0 / 31.0).abs() < 0.1 / 31.0, "loss rate {rate}");
    let mut bursts = Vec::new();
    let mut run_len = 0;
    for &l in &lost {
        if l {
            run_len += 1;
        } else if run_len > 0 {
            bursts.push(run_len as f64);
            run_len = 0;
        }
    }
    let mean = bursts.iter().sum::<f64>() / bursts.len() as f64;
    // Geometric sd sqrt(1-r)/r = 2.79; se = 2.79/sqrt(4800) = 0.04.
    assert!(
        (mean - 1.0 / 0.3).abs() < 0.2,
        "mean burst {mean} over {} bursts",
        bursts.len()
    );
}

#[test]
fn gilbert_elliott_uses_the_state_the_packet_arrived_in() {
    // Always move good->bad, never back, lose everything in bad: the first
    // packet arrived in good and passes; every later one is lost.
    let mut p = pipeline("loss gemodel 100% 0% 100% 0%");
    let got = run(&mut p, 10, MS);
    assert_eq!(got.iter().map(|d| d.0).collect::<Vec<_>>(), vec![0]);
}

#[test]
fn four_state_model_loses_and_recovers() {
    // p13 = 5 %: from the good state, 5 % of packets start a burst; in the
    // burst p31 = 100 % returns at once: isolated losses at ~5 %.
    let n = 100_000;
    let mut p = pipeline("loss state 5% 100% 0% 100% 0%");
    let lost = n - run(&mut p, n, 1000).len() as u64;
    // A loss forces the next packet through (state 3 -> 1 without loss),
    // so the rate is 0.05 / 1.05.
    let expected = n as f64 * 0.05 / 1.05;
    assert!(
        (lost as f64 - expected).abs() < binomial_tolerance(n, 0.048),
        "lost {lost}"
    );
}

#[test]
fn duplicates_match_their_probability() {
    let n = 100_000;
    let mut p = pipeline("duplicate 2%");
    let got = run(&mut p, n, 1000).len() as u64;
    let dups = got - n;
    assert!(
        (dups as f64 - 2000.0).abs() < binomial_tolerance(n, 0.02),
        "duplicates {dups}"
    );
    assert_eq!(p.counters().duplicated, dups);
}

#[test]
fn a_copy_is_cloned_before_the_original_is_corrupted_then_takes_its_own_draw() {
    // As sch_netem.c: with corrupt 100% both are corrupted, each by its own
    // flip (one bit each, not the same two bits in both), unless the flip
    // fell in the Ethernet header (see the next test).
    let mut p = pipeline("duplicate 100% corrupt 100%");
    for i in 0..200 {
        p.enqueue(packet(i), 0);
    }
    let mut out = Vec::new();
    while let Some(pkt) = p.dequeue(0) {
        out.push(pkt);
    }
    assert_eq!(p.counters().corrupted, 400);
    assert_eq!(out.len() as u64 + p.counters().dropped_corrupt, 400);
    let flipped = |pkt: &Vec<u8>| {
        let i = u64::from_be_bytes(pkt[8..16].try_into().unwrap());
        let clean = if i < 200 { packet(i) } else { packet(index(pkt)) };
        pkt.iter()
            .zip(&clean)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum::<u32>()
    };
    assert!(out.iter().all(|p| flipped(p) <= 1));
    // 100 of 114 frame bytes are the packet's: at least 5 sd under 350.
    assert!(
        out.iter().filter(|p| flipped(p) == 1).count() >= 320,
        "one flipped bit per packet"
    );
    // And with corrupt 0 % the copy is untouched by the original's fate.
    let mut p = pipeline("duplicate 100%");
    p.enqueue(packet(1), 0);
    assert!(p.dequeue(0).is_some_and(|a| is_pristine(&a)) && p.dequeue(0).is_some_and(|b| is_pristine(&b)));
}

#[test]
fn corruption_falls_on_the_ethernet_header_too() {
    // A 100-byte packet is a 114-byte frame on a veth: of its 912 bits, the
    // destination address (bar its group bit, 47) and the EtherType (16)
    // make the frame undeliverable, the source address (48) and the group
    // bit (1) leave it as it was, and 800 flip a bit of the packet.
    let n = 20_000u64;
    let mut p = pipeline("corrupt 100%");
    let (mut intact, mut flipped) = (0u64, 0u64);
    for i in 0..n {
        p.enqueue(packet(i), 0);
        while let Some(pkt) = p.dequeue(0) {
            if is_pristine(&pkt) {
                intact += 1;
            } else {
                flipped += 1;
            }
        }
    }
    let dropped = p.counters().dropped_corrupt;
    assert_eq!(intact + flipped + dropped, n);
    for (what, got, bits) in [
        ("dropped", dropped, 63.0),
        ("intact", intact, 49.0),
        ("flipped", flipped, 800.0),
    ] {
        let q = bits / 912.0;
        let sd = (n as f64 * q * (1.0 - q)).sqrt();
        assert!(
            (got as f64 - n as f64 * q).abs() < 5.0 * sd,
            "{what}: {got} of {n}, expected {:.0} +- {:.0}",
            n as f64 * q,
            5.0 * sd
        );
    }
}

#[test]
fn a_full_queue_drops_the_copy_with_the_original() {
    // As netem: the limit is checked once for the original; a copy then
    // queues on its own check, the original after it without one.
    let mut p = pipeline("delay 10ms duplicate 100% limit 3");
    for i in 0..3 {
        p.enqueue(packet(i), 0);
    }
    assert_eq!(p.queued(), 4);
    // Three copies made, the last dropped with its original.
    assert_eq!((p.counters().duplicated, p.counters().dropped_limit), (3, 2));
}

#[test]
fn a_duplicate_correlation_applies_only_when_tc_would_send_it() {
    // tc sends correlations only alongside a delay, loss, reorder or
    // corrupt one: alone, "duplicate 5% 90%" duplicates 5 %.
    let dups = |profile: &str| {
        let mut p = pipeline(profile);
        for i in 0..10_000 {
            p.enqueue(packet(i), 0);
            while p.dequeue(0).is_some() {}
        }
        p.counters().duplicated
    };
    // 5 % of 10,000: sd 21.8, 5 sd 109.
    let alone = dups("duplicate 5% 90%");
    assert!(alone.abs_diff(500) < 109, "{alone} duplicated");
    // With a loss correlation the duplicate one applies, and a 90 %
    // correlated draw almost never falls under 5 %.
    let with_loss = dups("duplicate 5% 90% loss 0.0001% 1%");
    assert!(with_loss < 50, "{with_loss} duplicated");
}

#[test]
fn duplication_is_decided_before_loss() {
    // netem counts copies: duplication adds one, loss takes one away. With
    // both certain, every packet goes through exactly once, uncopied.
    let mut p = pipeline("duplicate 100% loss 100%");
    for i in 0..100 {
        p.enqueue(packet(i), 0);
    }
    assert_eq!((p.counters().duplicated, p.counters().dropped_loss), (0, 0));
    let mut got = 0;
    while p.dequeue(0).is_some() {
        got += 1;
    }
    assert_eq!(got, 100);
    // 50 % loss: half the time the loss eats the extra copy (1 delivered);
    // else a copy is made and takes its own 50 % draw: 0.5 + 0.5 * 1.5 =
    // 1.25 per arrival; the per-arrival sd is ~0.43.
    let n = 40_000;
    let mut p = pipeline("duplicate 100% loss 50%");
    let delivered = run(&mut p, n, 1000).len() as f64;
    let tolerance = 5.0 * 0.433 * (n as f64).sqrt();
    assert!(
        (delivered - 1.25 * n as f64).abs() < tolerance,
        "delivered {delivered}"
    );
}

#[test]
fn reorder_sends_the_chosen_ones_ahead() {
    let n = 100_000;
    let mut p = pipeline("delay 10ms reorder 25%");
    let got = run(&mut p, n, 100_000);
    let early = got.iter().filter(|(_, sent, at)| at == sent).count() as f64;
    assert!(
        (early - 25_000.0).abs() < binomial_tolerance(n, 0.25),
        "early {early}"
    );
    let overtakes = got.windows(2).filter(|w| w[1].0 < w[0].0).count();
    assert!(overtakes > 0, "reordered packets must overtake delayed ones");
    assert_eq!(p.counters().reordered as f64, early);
}

#[test]
fn reorder_gap_makes_every_nth_packet_eligible() {
    // gap 5: after a reordered packet the next 4 are always delayed, then
    // each is sent at once with p = 25 %: cycles of 4 + Geometric(0.25),
    // mean 8, so 1/8 of packets go early. ~12,500 cycles of sd 3.46: the
    // fraction's se is ~0.0005; allow 0.005.
    let n = 100_000;
    let mut p = pipeline("delay 10ms reorder 25% gap 5");
    let got = run(&mut p, n, 100_000);
    let early: Vec<u64> = got.iter().filter(|(_, s, a)| a == s).map(|d| d.0).collect();
    let fraction = early.len() as f64 / n as f64;
    assert!((fraction - 0.125).abs() < 0.005, "fraction {fraction}");
    let min_spacing = early.windows(2).map(|w| w[1] - w[0]).min().unwrap();
    assert!(
        min_spacing >= 5,
        "two early packets {min_spacing} apart inside the gap"
    );
}

#[test]
fn delay_and_jitter_have_the_configured_mean_and_spread() {
    for (profile, sd_want) in [
        ("delay 10ms 2ms", 2e6 / 3f64.sqrt()),
        ("delay 10ms 2ms distribution normal", 2e6),
    ] {
        let n = 50_000;
        let mut p = pipeline(profile);
        let got = run(&mut p, n, 100_000);
        let delays: Vec<f64> = got.iter().map(|(_, s, a)| (a - s) as f64).collect();
        let mean = delays.iter().sum::<f64>() / n as f64;
        let sd = (delays.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        // se of the mean = sd/sqrt(n) ~ 9 us; of the sd ~ sd/sqrt(2n) ~ 6 us.
        assert!((mean - 10e6).abs() < 45e3, "{profile}: mean {mean}");
        assert!((sd - sd_want).abs() < 40e3, "{profile}: sd {sd}");
        let reordered = got.windows(2).filter(|w| w[1].0 < w[0].0).count();
        assert!(reordered > 0, "{profile}: jitter without rate reorders");
    }
}

#[test]
fn rate_spaces_packets_by_their_serialization_time() {
    // 8 Mbit/s = 1 MB/s: a 100-byte packet + 14 bytes of L2 header takes
    // 114 us. Ten arrive at once and leave 114 us apart, in order.
    let mut p = pipeline("rate 8mbit");
    for i in 0..10 {
        p.enqueue(packet(i), 0);
    }
    let mut times = Vec::new();
    while let Some(due) = p.next_due() {
        let pkt = p.dequeue(due).unwrap();
        times.push((index(&pkt), due));
    }
    let expected: Vec<(u64, u64)> = (0..10).map(|i| (i, (i + 1) * 114_000)).collect();
    assert_eq!(times, expected);
}

#[test]
fn rate_and_delay_overlap() {
    // With delay 10 ms, the second packet's serialization happens during
    // the first one's delay: it leaves 114 us after the first, not 10 ms.
    let mut p = pipeline("delay 10ms rate 8mbit");
    p.enqueue(packet(0), 0);
    p.enqueue(packet(1), 0);
    let first = p.next_due().unwrap();
    p.dequeue(first).unwrap();
    let second = p.next_due().unwrap();
    assert_eq!((first, second), (10 * MS + 114_000, 10 * MS + 228_000));
}

#[test]
fn limit_drops_at_the_tail() {
    let mut p = pipeline("delay 10ms limit 5");
    for i in 0..10 {
        p.enqueue(packet(i), 0);
    }
    assert_eq!(p.counters().dropped_limit, 5);
    let mut kept = Vec::new();
    while let Some(pkt) = p.dequeue(20 * MS) {
        kept.push(index(&pkt));
    }
    assert_eq!(kept, vec![0, 1, 2, 3, 4], "the newest are dropped");
}

#[test]
fn same_seed_same_decisions_other_seed_other_decisions() {
    let profile = "delay 5ms 2ms 25% loss 3% duplicate 2% corrupt 1% reorder 10% gap 3";
    let spec = NetemSpec::parse(profile).unwrap();
    let trace = |seed| run(&mut Pipeline::new(&spec, seed), 5_000, 50_000);
    assert_eq!(trace(1), trace(1));
    assert_ne!(trace(1), trace(2));
    let seeded = NetemSpec::parse(&format!("{profile} seed 9")).unwrap();
    assert_eq!(
        run(&mut Pipeline::new(&seeded, 1), 1000, 50_000),
        run(&mut Pipeline::new(&seeded, 2), 1000, 50_000),
        "a seed in the profile wins over the caller's"
    );
}

#[test]
fn ecn_marks_capable_packets_instead_of_dropping_them() {
    let mut p = pipeline("loss 100% ecn");
    // IPv4 header, ECT(0), with a valid checksum; and a not-ECT one.
    let mut ect = vec![
        0x45, 0x02, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    let sum = checksum(&ect);
    ect[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut not_ect = ect.clone();
    not_ect[1] = 0;
    p.enqueue(ect, 0);
    p.enqueue(not_ect, 0);
    let out = p.dequeue(0).expect("the ECN-capable packet is delivered");
    assert_eq!(out[1] & 0x03, 0x03, "marked CE");
    assert_eq!(checksum(&out), 0, "header checksum still valid");
    assert!(p.dequeue(0).is_none(), "the other one is dropped");
    assert_eq!((p.counters().ecn_marked, p.counters().dropped_loss), (1, 1));
}

fn checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]) as u32).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[test]
fn slots_release_packets_in_bursts() {
    // Slots every 1 ms, at most 4 packets each: 12 packets at t=0 leave in
    // three bursts of 4, a slot apart.
    let mut p = pipeline("slot 1ms 1ms packets 4");
    for i in 0..12 {
        p.enqueue(packet(i), 0);
    }
    let mut departures = Vec::new();
    let mut now = 0;
    while let Some(due) = p.next_due() {
        now = now.max(due);
        while let Some(pkt) = p.dequeue(now) {
            departures.push((index(&pkt), now));
        }
    }
    let times: Vec<u64> = departures.iter().map(|d| d.1).collect();
    assert_eq!(departures.len(), 12);
    assert_eq!(times, [[MS; 4], [2 * MS; 4], [3 * MS; 4]].concat());
}

#[test]
fn a_link_slower_than_centuries_a_packet_saturates() {
    // Found by fuzzing: at 1 byte/s with 240,005 bytes a 4-byte cell, a
    // packet takes 190 years; the second one's send time overflowed.
    let mut p = pipeline("rate 10bit 100000 4 240005");
    for i in 0..3 {
        p.enqueue(packet(i), 0);
    }
    let first = p.next_due().unwrap();
    assert!(first > 5_000_000_000 * 1_000_000_000, "{first}");
    let mut left = Vec::new();
    while let Some(pkt) = p.dequeue(u64::MAX) {
        left.push(index(&pkt));
    }
    assert_eq!(left, [0, 1, 2]);
}

#[test]
fn a_slot_byte_budget_past_i64_is_no_limit() {
    // 2^63 bytes read as an i64 was negative, and the first packet's
    // bytes taken from it overflowed.
    let mut p = pipeline("slot 1ms bytes 9223372036854775808 packets 2");
    for i in 0..4 {
        p.enqueue(packet(i), 0);
    }
    let mut times = Vec::new();
    while let Some(due) = p.next_due() {
        while p.dequeue(due).is_some() {
            times.push(due);
        }
    }
    assert_eq!(times, [MS, MS, 2 * MS, 2 * MS], "two packets a slot");
}

#[test]
fn slot_gaps_are_uniform_over_a_wide_range() {
    // Found by fuzzing: a spread past 4.3 s overflowed 64 bits.
    let (min, max) = (MS, 20_000 * MS);
    let mut p = pipeline("slot 1ms 20s packets 1");
    let n = 400;
    for i in 0..n {
        p.enqueue(packet(i), 0);
    }
    let mut times = Vec::new();
    let mut now = 0;
    while let Some(due) = p.next_due() {
        now = now.max(due);
        while p.dequeue(now).is_some() {
            times.push(now);
        }
    }
    assert_eq!(times.len() as u64, n);
    let gaps: Vec<f64> = times.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
    assert!(gaps.iter().all(|&g| g >= min as f64 && g < max as f64));
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let se = (max - min) as f64 / 12f64.sqrt() / (gaps.len() as f64).sqrt();
    let expected = (min + max) as f64 / 2.0;
    assert!(
        (mean - expected).abs() < 5.0 * se,
        "mean gap {mean} vs {expected}"
    );
}

#[test]
fn deliver_at_once_only_where_enqueue_would_hand_the_packet_straight_back() {
    for profile in ["", "delay 0ms", "loss 0%", "duplicate 0% corrupt 0%", "limit 10"] {
        let (mut fast, mut queued) = (pipeline(profile), pipeline(profile));
        for i in 0..100 {
            assert!(fast.deliver_at_once(1), "{profile:?}");
            queued.enqueue(packet(i), i * MS);
            assert_eq!(queued.dequeue(i * MS), Some(packet(i)), "{profile:?}");
        }
        assert_eq!(fast.counters(), queued.counters(), "{profile:?}");
        // A super-packet counts as the wire packets it carries.
        assert!(fast.deliver_at_once(45), "{profile:?}");
        assert_eq!(fast.counters().arrived, 145, "{profile:?}");
        assert_eq!(fast.counters().delivered, 145, "{profile:?}");
        // Never ahead of a packet already queued.
        fast.enqueue(packet(100), 100 * MS);
        assert!(!fast.deliver_at_once(1), "{profile:?}");
    }
    for profile in [
        "delay 1ms",
        "delay 0ms 1ms",
        "loss 1%",
        "loss gemodel 0% 100%",
        "duplicate 1%",
        "corrupt 1%",
        "delay 1ms reorder 0%",
        "rate 1gbit",
        "slot 1ms",
        "limit 0",
    ] {
        let mut p = pipeline(profile);
        assert!(!p.deliver_at_once(1), "{profile:?}");
        assert_eq!(p.counters(), Default::default(), "{profile:?}");
    }
}
