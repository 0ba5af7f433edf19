//! Impairment schedules: the grammar, what the schedule says at each time,
//! and a pipeline following it on a fake clock with seeded randomness.
//! Statistical bounds: 5 standard errors, as the pipeline's tests.

use linkemu::schedule::RAMP_STEP_NS;
use linkemu::spec::{Chance, Loss};
use linkemu::{ImpairSchedule, NetemSpec, Pipeline, ScheduleError, ScheduledPipeline, Shape};

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

/// Schedule time 0 on the fake clock: not 0, so that a mix-up of the
/// schedule's clock and the caller's shows.
const START: u64 = 1_000 * S;

fn schedule(text: &str) -> ImpairSchedule {
    ImpairSchedule::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn scheduled(text: &str) -> ScheduledPipeline {
    ScheduledPipeline::new(schedule(text), 42, START)
}

fn packet(i: usize) -> Vec<u8> {
    let mut p = vec![0u8; 100];
    p[..8].copy_from_slice(&(i as u64).to_be_bytes());
    p
}

fn index(p: &[u8]) -> usize {
    u64::from_be_bytes(p[..8].try_into().unwrap()) as usize
}

/// Feeds packet `i` at `arrivals[i]` (rising, on the caller's clock) and
/// wakes whenever `next_due` says, as the I/O loop does, until nothing is
/// queued and no change is due by `until`. Returns when each packet was
/// delivered, if it was.
fn drive(p: &mut ScheduledPipeline, arrivals: &[u64], until: u64) -> Vec<Option<u64>> {
    let mut delivered = vec![None; arrivals.len()];
    let mut next = 0;
    loop {
        let due = p.next_due().filter(|&d| d <= until || p.queued() > 0);
        match (due, arrivals.get(next)) {
            (None, None) => return delivered,
            (Some(due), a) if a.is_none_or(|&a| due <= a) => {
                while let Some(pkt) = p.dequeue(due) {
                    let i = index(&pkt);
                    assert!(delivered[i].is_none(), "packet {i} delivered twice");
                    delivered[i] = Some(due);
                }
            }
            (_, Some(&a)) => {
                p.enqueue(packet(next), a);
                next += 1;
            }
            (Some(_), None) => unreachable!("a wake-up with no arrival left is taken above"),
        }
    }
}

fn random_loss(probability: f64) -> Option<Loss> {
    Some(Loss::Random(Chance {
        probability,
        correlation: 0.0,
    }))
}

#[test]
fn a_partition_drops_every_packet_inside_its_window_and_none_outside() {
    let mut arrivals: Vec<u64> = (0..20_000).map(|i| i * MS).collect();
    arrivals.extend([5 * S - 1, 13 * S - 1]);
    arrivals.sort();
    let inside = |t: u64| (5 * S..13 * S).contains(&t);
    let absolute: Vec<u64> = arrivals.iter().map(|t| START + t).collect();

    let mut p = scheduled("0s: delay 10ms; partition 5s 8s");
    let delivered = drive(&mut p, &absolute, START + 30 * S);
    for (i, &t) in arrivals.iter().enumerate() {
        if inside(t) {
            assert_eq!(delivered[i], None, "arrived at {t} ns, inside the partition");
        } else {
            assert_eq!(delivered[i], Some(START + t + 10 * MS), "arrived at {t} ns");
        }
    }
    let dropped = arrivals.iter().filter(|&&t| inside(t)).count() as u64;
    assert_eq!(p.counters().dropped_loss, dropped);
    assert_eq!(p.counters().delivered, arrivals.len() as u64 - dropped);

    // One way: the other direction's schedule has no partition.
    let mut other = scheduled("0s: delay 10ms");
    let delivered = drive(&mut other, &absolute, START + 30 * S);
    assert!(delivered.iter().all(Option::is_some));
}

#[test]
fn a_partition_keeps_the_profile_but_its_loss_and_ecn() {
    let s = schedule("0s: delay 10ms loss 1% ecn; partition 1s 1s");
    let before = s.at(0);
    let during = s.at(S);
    assert_eq!(during.loss, random_loss(1.0));
    assert!(before.ecn && !during.ecn, "ecn would mark instead of dropping");
    assert_eq!(during.delay, before.delay);
    assert_eq!(s.at(2 * S), before);
}

#[test]
fn packets_queued_before_a_change_keep_their_delay() {
    // Shorter delay from 1s: the packet after the change overtakes.
    let mut p = scheduled("0s: delay 100ms; 1s: delay 10ms");
    let delivered = drive(&mut p, &[START + 950 * MS, START + S], START + 2 * S);
    assert_eq!(delivered, [Some(START + 1050 * MS), Some(START + 1010 * MS)]);

    // Queued just before a partition: on the wire already, delivered.
    let mut p = scheduled("0s: delay 10ms; partition 5s 8s");
    let delivered = drive(&mut p, &[START + 4995 * MS, START + 5 * S], START + 20 * S);
    assert_eq!(delivered, [Some(START + 5005 * MS), None]);
}

#[test]
fn a_rate_carries_on_across_a_change() {
    // 80 kbit/s: a 100-byte packet (114 with the Ethernet header) takes
    // 11.4 ms. Three queued at 990 ms leave at 1001.4, 1012.8 and
    // 1024.2 ms; one arriving at 1 s, under the new spec, serializes after
    // them: its 5 ms delay is already over by then (1024.2 + 11.4).
    let mut p = scheduled("0s: rate 80kbit; 1s: rate 80kbit delay 5ms");
    let arrivals = [990 * MS, 990 * MS, 990 * MS, S].map(|t| START + t);
    let delivered = drive(&mut p, &arrivals, START + 2 * S);
    let us = 1_000;
    assert_eq!(
        delivered,
        [1_001_400, 1_012_800, 1_024_200, 1_035_600].map(|t| Some(START + t * us))
    );
}

#[test]
fn changes_happen_at_the_exact_nanosecond() {
    let mut p = scheduled("0s: none; 5s: delay 7ms; 9s: none");
    let arrivals = [5 * S - 1, 5 * S, 9 * S - 1, 9 * S].map(|t| START + t);
    let delivered = drive(&mut p, &arrivals, START + 20 * S);
    assert_eq!(
        delivered,
        [
            Some(arrivals[0]),
            Some(arrivals[1] + 7 * MS),
            Some(arrivals[2] + 7 * MS),
            Some(arrivals[3])
        ]
    );

    // An idle link is woken for each change, at its time.
    let mut p = scheduled("0s: none; 5s: delay 7ms; 9s: none");
    assert_eq!(p.next_due(), Some(START + 5 * S));
    assert!(
        p.deliver_at_once(|| START + 5 * S - 1, 1),
        "nothing to do to it yet"
    );
    assert_eq!(p.dequeue(START + 5 * S), None);
    assert_eq!(p.next_due(), Some(START + 9 * S));
    assert!(
        !p.deliver_at_once(|| START + 9 * S - 1, 1),
        "it is to be delayed now"
    );
    p.enqueue(packet(0), START + 9 * S - 1);
    assert_eq!(p.next_due(), Some(START + 9 * S), "the change comes first");
    assert_eq!(p.dequeue(START + 9 * S), None);
    assert_eq!(p.next_due(), Some(START + 9 * S - 1 + 7 * MS), "the packet");
    assert!(p.dequeue(START + 9 * S - 1 + 7 * MS).is_some());
    assert_eq!(p.next_due(), None, "no change left");
    assert!(p.deliver_at_once(|| START + 9 * S + 7 * MS, 1));
}

#[test]
fn the_change_times_are_the_schedule_s() {
    let s = schedule("0s: delay 10ms; 5s: loss 100%; 13s: delay 10ms; partition 20s 1500ms");
    let mut changes = vec![];
    let mut t = 0;
    while let Some(next) = s.next_change_after(t) {
        assert_eq!(s.last_change_at_or_before(next), next);
        assert_eq!(s.last_change_at_or_before(next - 1), t);
        changes.push(next);
        t = next;
    }
    assert_eq!(changes, [5 * S, 13 * S, 20 * S, 21_500 * MS]);
}

#[test]
fn a_flap_alternates() {
    let s = schedule("0s: delay 1ms; flap 2s at 1s for 9s");
    let mut changes = vec![];
    let mut t = 0;
    while let Some(next) = s.next_change_after(t) {
        changes.push(next);
        t = next;
    }
    assert_eq!(changes, [1, 3, 5, 7, 9, 10].map(|t| t * S));
    let down = |t: u64| {
        [(S, 3 * S), (5 * S, 7 * S), (9 * S, 10 * S)]
            .iter()
            .any(|&(a, b)| (a..b).contains(&t))
    };
    for t in (0..12_000).map(|i| i * MS) {
        assert_eq!(s.is_partitioned(t), down(t), "at {t} ns");
    }

    let arrivals: Vec<u64> = (0..1_200).map(|i| START + i * 10 * MS).collect();
    let mut p = ScheduledPipeline::new(s, 7, START);
    let delivered = drive(&mut p, &arrivals, START + 20 * S);
    for (i, d) in delivered.iter().enumerate() {
        let t = arrivals[i] - START;
        assert_eq!(d.is_none(), down(t), "arrived at {t} ns");
    }
}

#[test]
fn a_flap_without_an_end_goes_on() {
    // Up first: the first outage at PERIOD.
    let s = schedule("flap 2s");
    assert_eq!(
        s.shapes(),
        [Shape::Flap {
            period_ns: 2 * S,
            at_ns: 2 * S,
            for_ns: None
        }]
    );
    assert!(!s.is_partitioned(2 * S - 1) && s.is_partitioned(2 * S) && !s.is_partitioned(4 * S));
    assert_eq!(s.next_change_after(0), Some(2 * S));
    // Beyond the hour a time in a profile may be.
    assert!(s.is_partitioned(10_002 * S + 1));
    assert_eq!(s.next_change_after(10_001 * S), Some(10_002 * S));
    assert_eq!(s.last_change_at_or_before(10_003 * S + 7), 10_002 * S);
}

#[test]
fn a_ramp_s_loss_follows_its_steps() {
    let s = schedule("ramp loss 0% 50% 2s at 1s");
    assert_eq!(s.at(S - 1).loss, None);
    assert_eq!(s.at(S).loss, random_loss(0.0));
    assert_eq!(s.at(1350 * MS).loss, random_loss(0.5 * 3.0 / 20.0));
    assert_eq!(s.at(3 * S - 1).loss, random_loss(0.5 * 19.0 / 20.0));
    assert_eq!(s.at(3 * S).loss, random_loss(0.5));
    assert_eq!(s.at(100 * S).loss, random_loss(0.5), "held to the end");
    assert_eq!(s.next_change_after(S + 1), Some(S + RAMP_STEP_NS));
    assert_eq!(s.next_change_after(3 * S - 1), Some(3 * S));
    assert_eq!(s.next_change_after(3 * S), None);

    // A packet every 10 us: 10,000 a step. The losses in each step lie
    // within 5 standard errors of the step's loss.
    let gap = 10_000;
    let arrivals: Vec<u64> = (0..350_000).map(|i| START + i * gap).collect();
    let mut p = ScheduledPipeline::new(s.clone(), 42, START);
    let delivered = drive(&mut p, &arrivals, START + 4 * S);
    let mut per_step = std::collections::BTreeMap::<u64, (u64, u64)>::new();
    for (i, d) in delivered.iter().enumerate() {
        let step = (arrivals[i] - START) / RAMP_STEP_NS;
        let e = per_step.entry(step).or_default();
        e.0 += 1;
        e.1 += d.is_none() as u64;
    }
    for (step, (n, lost)) in per_step {
        let Some(Loss::Random(c)) = s.at(step * RAMP_STEP_NS).loss else {
            assert_eq!(lost, 0, "step {step}: before the ramp");
            continue;
        };
        let expected = n as f64 * c.probability;
        let bound = 5.0 * (expected * (1.0 - c.probability)).sqrt();
        assert!(
            (lost as f64 - expected).abs() <= bound,
            "step {step}: {lost} of {n} lost, expected {expected} ± {bound}"
        );
    }
}

#[test]
fn a_ramp_holds_until_a_step_or_a_ramp_takes_over() {
    let s = schedule("0s: delay 1ms; ramp loss 0% 10% 1s; 500ms: delay 2ms; 5s: delay 1ms");
    assert_eq!(
        s.at(700 * MS).loss,
        random_loss(0.1 * 7.0 / 10.0),
        "a step during the ramp keeps it"
    );
    assert_eq!(s.at(700 * MS).delay.unwrap().latency_ns, 2 * MS);
    assert_eq!(s.at(3 * S).loss, random_loss(0.1));
    assert_eq!(s.at(5 * S).loss, None);

    // Down again, from a second ramp on.
    let s = schedule("ramp loss 0% 10% 1s; ramp loss 10% 0% 1s at 2s");
    assert_eq!(s.at(1500 * MS).loss, random_loss(0.1));
    assert_eq!(s.at(2500 * MS).loss, random_loss(0.1 - 0.1 * 5.0 / 10.0));
    assert_eq!(s.at(3 * S).loss, random_loss(0.0));

    // A partition wins; the ramp resumes where it would be.
    let s = schedule("ramp loss 0% 10% 10s; partition 2s 1s");
    assert_eq!(s.at(2500 * MS).loss, random_loss(1.0));
    assert_eq!(s.at(3 * S).loss, random_loss(0.1 * 30.0 / 100.0));
}

#[test]
fn a_ramp_shorter_than_a_step_jumps_at_its_end() {
    let s = schedule("ramp loss 1% 2% 30ms");
    assert_eq!(s.at(29 * MS).loss, random_loss(0.01));
    assert_eq!(s.at(30 * MS).loss, random_loss(0.02));
    assert_eq!(s.next_change_after(0), Some(30 * MS));
}

#[test]
fn a_constant_schedule_is_the_plain_pipeline() {
    let spec =
        NetemSpec::parse("delay 10ms 5ms 20% loss 5% duplicate 1% corrupt 1% reorder 10% gap 3").unwrap();
    let mut scheduled = ScheduledPipeline::new(ImpairSchedule::constant(spec.clone()), 9, START);
    let mut plain = Pipeline::new(&spec, 9);
    let (mut a, mut b) = (vec![], vec![]);
    for i in 0..20_000 {
        let now = START + i as u64 * 100_000;
        scheduled.enqueue(packet(i), now);
        plain.enqueue(packet(i), now);
        while let Some(p) = scheduled.dequeue(now) {
            a.push((p, now));
        }
        while let Some(p) = plain.dequeue(now) {
            b.push((p, now));
        }
    }
    assert_eq!(a, b);
    assert_eq!(scheduled.counters(), plain.counters());
}

#[test]
fn changes_slept_through_come_to_the_same() {
    // One pipeline is woken for every change; the other only when a
    // packet arrives, every 230 ms, past several changes at a time.
    let text = "0s: delay 5ms 2ms loss 20%; flap 100ms at 50ms for 1s; ramp loss 0% 40% 1s at 2s";
    let arrivals: Vec<u64> = (0..20).map(|i| START + i * 230 * MS).collect();
    let mut woken = scheduled(text);
    let delivered = drive(&mut woken, &arrivals, START + 10 * S);

    let mut sleepy = scheduled(text);
    let mut lost = vec![true; arrivals.len()];
    for (i, &t) in arrivals.iter().enumerate() {
        while let Some(p) = sleepy.dequeue(t) {
            lost[index(&p)] = false;
        }
        sleepy.enqueue(packet(i), t);
    }
    while let Some(p) = sleepy.dequeue(u64::MAX) {
        lost[index(&p)] = false;
    }
    let lost_woken: Vec<bool> = delivered.iter().map(Option::is_none).collect();
    assert_eq!(lost, lost_woken);
    assert!(lost.iter().any(|&l| l) && lost.iter().any(|&l| !l), "{lost:?}");
    assert_eq!(sleepy.counters(), woken.counters());
}

#[test]
fn profiles_can_be_given_a_default_limit() {
    let mut s = schedule("0s: delay 1ms; 1s: limit 10 delay 2ms; partition 2s 1s");
    for p in s.profiles_mut() {
        p.limit.get_or_insert(100_000);
    }
    assert_eq!(s.at(0).limit, Some(100_000));
    assert_eq!(s.at(1500 * MS).limit, Some(10));
    assert_eq!(s.at(2 * S).limit, Some(10));
    assert_eq!(
        s.to_string(),
        "0s: limit 100000 delay 1ms; 1s: limit 10 delay 2ms; partition 2s 1s"
    );
}

#[test]
fn canonical_forms() {
    for (text, canonical) in [
        (
            "0s: delay 10ms; 5s: loss 100%; 13s: delay 10ms",
            "0s: delay 10ms; 5s: loss random 100%; 13s: delay 10ms",
        ),
        (
            "0s: delay 10ms; partition 5s 8s",
            "0s: delay 10ms; partition 5s 8s",
        ),
        ("partition 1s 4s", "0s: none; partition 1s 4s"),
        ("partition 1s 4s;", "0s: none; partition 1s 4s"),
        ("", "0s: none"),
        ("0s: none", "0s: none"),
        ("0s:limit 1000", "0s: limit 1000"),
        (
            "0s: delay 20ms 5ms; flap 2s at 10s for 20s",
            "0s: delay 20ms 5ms; flap 2s at 10s for 20s",
        ),
        ("flap 2000ms for 1.5s", "0s: none; flap 2s at 2s for 1500ms"),
        (
            "ramp loss 0% 10% 10s at 5s; 0s: delay 10ms; 30s: delay 10ms",
            "0s: delay 10ms; 30s: delay 10ms; ramp loss 0% 10% 10s at 5s",
        ),
        (
            "ramp loss 5 1.5% 250us; partition 0.5s 1ns",
            "0s: none; ramp loss 5% 1.5% 250us at 0s; partition 500ms 1ns",
        ),
        (
            "0s: delay 5ms; partition 2s 1s reject tcp-reset",
            "0s: delay 5ms; partition 2s 1s reject tcp-reset",
        ),
        ("partition 2s 1s   reject", "0s: none; partition 2s 1s reject"),
        ("2s: reject; 3s:  none", "0s: none; 2s: reject; 3s: none"),
        ("0s:reject   tcp-reset", "0s: reject tcp-reset"),
    ] {
        let s = schedule(text);
        assert_eq!(s.to_string(), canonical, "{text}");
        assert_eq!(schedule(canonical), s, "{canonical}");
    }
}

fn item_error(text: &str) -> (usize, String) {
    match ImpairSchedule::parse(text) {
        Err(ScheduleError::Item { item, expected, .. }) => (item, expected),
        other => panic!("{text}: {other:?}"),
    }
}

#[test]
fn parse_errors_say_what_to_write() {
    for (text, item, says) in [
        (
            "0s: delay 10ms; 5s loss 100%",
            2,
            "a colon after the time: \"5s: loss 100%\"",
        ),
        ("5s", 1, "\"5s: PROFILE\""),
        (
            "0s: delay 10ms; 5s: loss 100%; 5s: none",
            3,
            "after the previous step's 5s",
        ),
        ("0s: delay 10ms; 5s: loss 100%; 3s: none", 3, "rising order"),
        ("5: delay 10ms", 1, "a time with a unit"),
        ("7200s: delay 10ms", 1, "at most an hour"),
        ("1s:", 1, "none for no impairment (e.g. 1s: none)"),
        (
            "delay 10ms; partition 1s 2s",
            1,
            "a time first: \"0s: delay 10ms\"",
        ),
        ("blackhole 5s 8s", 1, "a step or a shape, not \"blackhole\""),
        ("0s: none; partition 5s", 2, "partition AT FOR"),
        ("partition 5s 8s 9s", 1, "partition AT FOR"),
        ("partition 5s 0s", 1, "FOR longer than 0s"),
        ("partition 5 8s", 1, "AT: a time with a unit"),
        ("flap 5ms", 1, "PERIOD at least 10ms"),
        ("flap 1s at", 1, "a time after \"at\""),
        ("flap 1s at 1s at 2s", 1, "another option, not \"at\""),
        ("flap 1s for 0s", 1, "DURATION longer than 0s"),
        ("ramp delay 0ms 10ms 1s", 1, "only loss ramps"),
        ("ramp loss 0% 10%", 1, "ramp loss FROM TO OVER"),
        ("ramp loss 0% 110% 1s", 1, "TO: a percentage from 0 to 100"),
        ("ramp loss 0% 10% 1s for 2s", 1, "not \"for\""),
        (
            "ramp loss 0% 10% 2s; ramp loss 10% 0% 1s at 1s",
            2,
            "at or after 2s, where the ramp from 0s ends",
        ),
        ("one-way partition 5s 8s", 1, "a schedule is per direction"),
        (
            "0s: delay 5ms; 2s: reject delay 5ms",
            2,
            "reject, or reject tcp-reset, not \"reject delay 5ms\": a rejecting link drops everything, so \
             no netem words go with it",
        ),
        ("2s: reject tcp-rst", 1, "not \"reject tcp-rst\""),
        (
            "partition 2s 1s reject icmp",
            1,
            "reject, or reject tcp-reset, not \"reject icmp\"; partition AT FOR [reject [tcp-reset]]",
        ),
        (
            "partition 2s 1s drop",
            1,
            "nothing more after FOR, or reject, not \"drop\"",
        ),
        (
            "reject tcp-reset",
            1,
            "a time first: \"0s: reject tcp-reset\" for a step, or \"partition AT FOR reject tcp-reset\"",
        ),
    ] {
        let (got_item, expected) = item_error(text);
        assert_eq!(got_item, item, "{text}: {expected}");
        assert!(expected.contains(says), "{text}: {expected}");
    }
}

#[test]
fn reject_among_netem_words_says_where_it_goes() {
    let e = ImpairSchedule::parse("0s: delay 5ms reject").unwrap_err();
    let ScheduleError::Profile { source, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(source.word, "reject");
    assert!(
        source.expected.contains("a step of its own (\"2s: reject\")"),
        "{e}"
    );
    let e = NetemSpec::parse("reject").unwrap_err();
    assert!(e.expected.contains("netem cannot answer"), "{e}");
}

#[test]
fn a_bad_profile_is_netem_s_error_with_the_item() {
    let e = ImpairSchedule::parse("0s: delay 10ms; 5s: loss 100% bogus").unwrap_err();
    let ScheduleError::Profile { item, source, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!((*item, source.word.as_str(), source.position), (2, "bogus", 3));
    let message = e.to_string();
    assert!(
        message.contains("item 2") && message.contains("a netem keyword"),
        "{message}"
    );
    let e = ImpairSchedule::parse("0s: none delay 10ms").unwrap_err();
    assert!(
        matches!(&e, ScheduleError::Profile { source, .. } if source.word == "none"),
        "{e:?}"
    );
}

#[test]
fn a_new_limit_applies_to_arrivals_only() {
    let mut p = Pipeline::new(&NetemSpec::parse("delay 100ms").unwrap(), 1);
    for i in 0..5 {
        p.enqueue(packet(i), 0);
    }
    p.set_spec(&NetemSpec::parse("limit 2 delay 100ms").unwrap(), MS);
    assert_eq!(p.queued(), 5, "not trimmed");
    p.enqueue(packet(5), MS);
    assert_eq!(p.counters().dropped_limit, 1);
    let out: Vec<usize> = std::iter::from_fn(|| p.dequeue(100 * MS))
        .map(|p| index(&p))
        .collect();
    assert_eq!(out, [0, 1, 2, 3, 4]);
}

#[test]
fn a_seeded_spec_restarts_its_draws_at_a_change() {
    // As netem reseeds its generator from the profile's seed.
    let seeded = NetemSpec::parse("loss 50% seed 7").unwrap();
    let lost = |p: &mut Pipeline, from: usize| -> Vec<bool> {
        (from..from + 200)
            .map(|i| {
                p.enqueue(packet(i), S);
                p.dequeue(S).is_none()
            })
            .collect()
    };
    let fresh = lost(&mut Pipeline::new(&seeded, 0), 0);
    let mut changed = Pipeline::new(&NetemSpec::parse("loss 10%").unwrap(), 3);
    lost(&mut changed, 0);
    changed.set_spec(&seeded, S);
    assert_eq!(lost(&mut changed, 200), fresh);
}

#[test]
fn a_held_pipeline_keeps_the_first_spec_until_started_and_each_start_begins_at_it() {
    let s = schedule("0s: delay 7ms; 1s: loss 100%; 2s: delay 7ms");
    let mut p = ScheduledPipeline::held(s, 42);
    assert_eq!(p.next_due(), None, "held: no change is due");
    p.enqueue(packet(0), START + 1500 * MS);
    assert_eq!(
        p.dequeue(START + 1507 * MS).map(|p| index(&p)),
        Some(0),
        "first spec"
    );

    // A trial: dark from 1 s to 2 s of its own time.
    let trial = START + 10 * S;
    p.start(trial, START + 9 * S);
    assert_eq!(p.next_due(), Some(trial + S));
    let delivered = drive(
        &mut p,
        &[trial + 500 * MS, trial + 1500 * MS, trial + 2500 * MS],
        trial + 3 * S,
    );
    assert_eq!(delivered, [Some(trial + 507 * MS), None, Some(trial + 2507 * MS)]);

    // Held inside the outage of a second trial: the first spec at once.
    let second = trial + 10 * S;
    p.start(second, second);
    p.enqueue(packet(0), second + 1100 * MS);
    p.hold(second + 1200 * MS);
    assert_eq!(
        p.next_due(),
        None,
        "held again: the lost packet is gone, no change due"
    );
    p.enqueue(packet(1), second + 1300 * MS);
    assert_eq!(p.dequeue(second + 1307 * MS).map(|p| index(&p)), Some(1));

    // Started again without a hold between: from the first spec too.
    let third = second + 10 * S;
    p.start(third, third);
    p.enqueue(packet(2), third + 1100 * MS);
    p.start(third + 5 * S, third + 1200 * MS);
    p.enqueue(packet(3), third + 1300 * MS);
    assert_eq!(
        p.dequeue(third + 1307 * MS).map(|p| index(&p)),
        Some(3),
        "packet 2 lost, 3 delayed"
    );
}

#[test]
fn blackouts_are_the_stretches_that_drop_everything() {
    let s = schedule("0s: delay 5ms; 1s: loss 100%; 2s: delay 5ms; partition 2s 1s; flap 1s at 6s for 3s");
    assert_eq!(
        s.blackouts(10 * S),
        [(S, 3 * S), (6 * S, 7 * S), (8 * S, 9 * S)],
        "a step's blackout joined to the partition after it; the flap's outages"
    );
    assert_eq!(s.blackouts(1500 * MS), [(S, 1500 * MS)], "cut at the end");
    assert!(schedule("0s: loss 50%; ramp loss 0% 10% 1s")
        .blackouts(10 * S)
        .is_empty());
    assert!(
        schedule("0s: loss 100% ecn").blackouts(S).is_empty(),
        "ECN marks, drops nothing"
    );
}

#[test]
fn a_reject_drops_everything_and_says_how_it_answers() {
    use linkemu::Reject;
    let s = schedule(
        "0s: delay 5ms; partition 2s 1s reject tcp-reset; 5s: reject; 6s: delay 5ms loss 1%; \
         partition 5500ms 100ms",
    );
    assert!(s.rejects() && !schedule("0s: delay 5ms; partition 2s 1s").rejects());
    for (t, rejects, dark) in [
        (0, None, false),
        (2 * S - 1, None, false),
        (2 * S, Some(Reject::TcpReset), true),
        (3 * S - 1, Some(Reject::TcpReset), true),
        (3 * S, None, false),
        (5 * S, Some(Reject::Icmp), true),
        (5500 * MS, None, true),
        (5600 * MS, Some(Reject::Icmp), true),
        (6 * S, None, false),
    ] {
        assert_eq!(s.rejects_at(t), rejects, "at {t} ns");
        assert_eq!(s.at(t).drops_everything(), dark, "at {t} ns");
    }
    assert_eq!(
        s.at(2 * S).delay,
        s.at(0).delay,
        "a partition keeps the profile's delay"
    );
    assert_eq!(s.blackouts(10 * S), [(2 * S, 3 * S), (5 * S, 6 * S)]);
    assert_eq!(
        s.rejecting(10 * S),
        [(2 * S, 3 * S), (5 * S, 5500 * MS), (5600 * MS, 6 * S)],
        "the blackhole inside the reject answers nothing"
    );
    assert_eq!(s.rejects_between(S, 4 * S), Some(Reject::TcpReset));
    assert_eq!(
        s.rejects_between(5500 * MS, 5600 * MS),
        None,
        "a blackhole over the reject"
    );
    assert_eq!(s.describe_at(2 * S), "reject tcp-reset");
    assert_eq!(s.describe_at(5 * S), "reject");
    assert_eq!(s.describe_at(0), s.at(0).to_string());
    let mut with_limits = s.clone();
    with_limits.profiles_mut().for_each(|p| p.limit = Some(7));
    assert_eq!(
        with_limits
            .steps()
            .iter()
            .filter(|st| st.profile.limit == Some(7))
            .count(),
        2,
        "a reject step has no profile to give a limit"
    );
}

/// An IPv4 UDP datagram from 10.0.0.1 to 10.0.0.2 carrying `i`.
fn datagram(i: u64) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 36, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
    p.extend_from_slice(&[0x10, 0x00, 0x20, 0x00, 0, 16, 0, 0]);
    p.extend_from_slice(&i.to_be_bytes());
    p
}

#[test]
fn a_rejected_packet_is_answered_the_way_it_came_and_counted() {
    let mut p = scheduled("0s: delay 10ms; partition 1s 1s reject");
    p.enqueue(datagram(0), START + 999 * MS);
    p.enqueue(datagram(1), START + S);
    p.enqueue(datagram(2), START + 2 * S - 1);
    assert!(
        !p.deliver_at_once(|| START + 1500 * MS, 1),
        "nothing passes a reject"
    );
    p.enqueue(datagram(3), START + 2 * S);
    let answers: Vec<Vec<u8>> = std::iter::from_fn(|| p.take_answer()).collect();
    assert_eq!(answers.len(), 2, "the two packets inside the stretch");
    for (answer, i) in answers.iter().zip([1u64, 2]) {
        assert_eq!(
            (answer[9], answer[20], answer[21]),
            (1, 3, 1),
            "ICMP host unreachable"
        );
        assert_eq!(answer[16..20], [10, 0, 0, 1], "to the sender");
        assert_eq!(answer[56..64], i.to_be_bytes(), "quoting packet {i}");
    }
    let c = p.counters();
    assert_eq!((c.arrived, c.rejected, c.reject_answers), (4, 2, 2));
    assert_eq!(c.dropped_loss, 0, "a rejected packet is no netem loss");
    let delivered: Vec<u64> = std::iter::from_fn(|| p.dequeue(START + 3 * S))
        .map(|d| u64::from_be_bytes(d[28..36].try_into().unwrap()))
        .collect();
    assert_eq!(
        delivered,
        [0, 3],
        "the one queued before the stretch, and the one after"
    );
    p.hold(START + 3 * S);
    p.start(START + 10 * S, START + 10 * S);
    p.enqueue(datagram(4), START + 11 * S);
    assert_eq!(
        p.take_answer().map(|a| a[56..64].to_vec()),
        Some(4u64.to_be_bytes().to_vec())
    );
}
