//! Properties of impairment schedules for arbitrary (bounded) ones written
//! in arbitrary ways: the canonical form parses back to the same
//! schedule, and the change times bracket every stretch where the spec is
//! constant; a pipeline following one makes the same decisions however
//! often it is woken. Seeded, so every run checks the same cases.

use linkemu::{ImpairSchedule, ScheduledPipeline};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        rng_seed: RngSeed::Fixed(0x7363_6865_6475_6c65),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const PROFILES: &[&str] = &[
    "none",
    "delay 10ms",
    "delay 20ms 5ms loss 1%",
    "loss 100%",
    "limit 500 delay 1ms",
    "loss gemodel 1% 30%",
    "rate 10mbit delay 2ms",
    "delay 5ms loss 2% ecn",
    "loss random 0.5% 25%",
    "reject",
    "reject tcp-reset",
];

/// What follows a partition's times: a blackhole, or a rejecting path.
const PARTITION_KINDS: &[&str] = &["", " reject", " reject tcp-reset"];

/// A time of `ms` milliseconds, written one of several ways.
fn time(ms: u64, style: u8) -> String {
    match style % 3 {
        0 => format!("{ms}ms"),
        1 => format!("{}s", ms as f64 / 1000.0),
        _ => format!("{}us", ms * 1000),
    }
}

fn percent(hundredths: u32) -> String {
    format!("{}%", hundredths as f64 / 100.0)
}

/// Steps (rising, maybe without one at 0s), then shapes slotted in among
/// them anywhere; ramps do not overlap.
fn schedule_text() -> impl Strategy<Value = String> {
    let steps = (
        any::<bool>(),
        prop::collection::vec((1u64..3_000, 0..PROFILES.len(), any::<u8>()), 0..5),
    );
    let partitions = prop::collection::vec((0u64..20_000, 1u64..5_000, any::<u8>()), 0..3);
    let flaps = prop::collection::vec(
        (
            10u64..3_000,
            prop::option::of(0u64..20_000),
            prop::option::of(1u64..10_000),
            any::<u8>(),
        ),
        0..2,
    );
    let ramps = prop::collection::vec(
        (
            0u64..3_000,
            1u64..5_000,
            0u32..=10_000,
            0u32..=10_000,
            any::<bool>(),
            any::<u8>(),
        ),
        0..3,
    );
    let positions = prop::collection::vec(0usize..6, 8);
    (steps, partitions, flaps, ramps, positions).prop_map(
        |((at_zero, steps), partitions, flaps, ramps, positions)| {
            let mut at = 0;
            let mut step_items = Vec::new();
            for (i, (gap, profile, style)) in steps.into_iter().enumerate() {
                if i > 0 || !at_zero {
                    at += gap;
                }
                step_items.push(format!("{}: {}", time(at, style), PROFILES[profile]));
            }
            let mut shapes = Vec::new();
            for (at, duration, style) in partitions {
                shapes.push(format!(
                    "partition {} {}{}",
                    time(at, style),
                    time(duration, style / 3),
                    PARTITION_KINDS[usize::from(style / 9) % PARTITION_KINDS.len()]
                ));
            }
            for (period, at, duration, style) in flaps {
                let mut s = format!("flap {}", time(period, style));
                if let Some(at) = at {
                    s += &format!(" at {}", time(at, style / 3));
                }
                if let Some(d) = duration {
                    s += &format!(" for {}", time(d, style / 9));
                }
                shapes.push(s);
            }
            let mut end = 0;
            for (gap, over, from, to, say_at, style) in ramps {
                let at = end + gap;
                end = at + over;
                let mut s = format!(
                    "ramp loss {} {} {}",
                    percent(from),
                    percent(to),
                    time(over, style)
                );
                if say_at || at > 0 {
                    s += &format!(" at {}", time(at, style / 3));
                }
                shapes.push(s);
            }
            // Shape k goes before step positions[k] (after all if beyond).
            let mut items = Vec::new();
            for (i, step) in step_items.iter().enumerate() {
                for (k, shape) in shapes.iter().enumerate() {
                    if positions[k] == i {
                        items.push(shape.clone());
                    }
                }
                items.push(step.clone());
            }
            for (k, shape) in shapes.iter().enumerate() {
                if positions[k] >= step_items.len() {
                    items.push(shape.clone());
                }
            }
            items.join("; ")
        },
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_canonical_form_parses_back_to_the_same_schedule(text in schedule_text()) {
        let schedule = ImpairSchedule::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        let canonical = schedule.to_string();
        let again = ImpairSchedule::parse(&canonical)
            .map_err(|e| TestCaseError::fail(format!("{text} -> {canonical}: {e}")))?;
        prop_assert_eq!(&again, &schedule, "{} -> {}", text, canonical);
        prop_assert_eq!(again.to_string(), canonical);
    }

    #[test]
    fn the_spec_changes_only_at_change_times(
        text in schedule_text(),
        times in prop::collection::vec(0u64..40_000_000_000, 32),
    ) {
        let s = ImpairSchedule::parse(&text).unwrap();
        for t in times {
            let last = s.last_change_at_or_before(t);
            let next = s.next_change_after(t);
            prop_assert!(last <= t && next.is_none_or(|n| n > t), "{}: {} <= {} < {:?}", text, last, t, next);
            prop_assert_eq!(s.next_change_after(last), next, "{}: nothing between {} and {}", text, last, t);
            prop_assert_eq!(s.at(last), s.at(t), "{}: from {} to {}", text, last, t);
            prop_assert_eq!(s.rejects_at(last), s.rejects_at(t), "{}: from {} to {}", text, last, t);
            if let Some(next) = next {
                prop_assert_eq!(s.at(next - 1), s.at(t), "{}: from {} to {}", text, t, next);
                prop_assert_eq!(s.rejects_at(next - 1), s.rejects_at(t), "{}: from {} to {}", text, t, next);
                prop_assert_eq!(s.last_change_at_or_before(next), next);
            }
            if t > 0 && s.at(t - 1) != s.at(t) {
                prop_assert_eq!(last, t, "{}: the spec changes at {}", text, t);
            }
        }
    }
}

fn packet(i: usize) -> Vec<u8> {
    let mut p = vec![0u8; 200];
    p[..8].copy_from_slice(&(i as u64).to_be_bytes());
    p
}

fn index(p: &[u8]) -> usize {
    u64::from_be_bytes(p[..8].try_into().unwrap()) as usize
}

/// Which packets arrive, one pipeline woken for every change and due
/// packet, the other only when a packet arrives (so it skips changes).
fn lost_when_woken_and_when_sleepy(
    schedule: &ImpairSchedule,
    arrivals: &[u64],
) -> (
    (Vec<bool>, linkemu::LinkCounters),
    (Vec<bool>, linkemu::LinkCounters),
) {
    const START: u64 = 77;
    let end = START + arrivals.last().copied().unwrap_or(0);
    let mut woken = ScheduledPipeline::new(schedule.clone(), 5, START);
    let mut sleepy = ScheduledPipeline::new(schedule.clone(), 5, START);
    let (mut lost_woken, mut lost_sleepy) = (vec![true; arrivals.len()], vec![true; arrivals.len()]);
    for (i, &a) in arrivals.iter().enumerate() {
        let now = START + a;
        while let Some(due) = woken.next_due().filter(|&d| d <= now) {
            while let Some(p) = woken.dequeue(due) {
                lost_woken[index(&p)] = false;
            }
        }
        woken.enqueue(packet(i), now);
        while let Some(p) = sleepy.dequeue(now) {
            lost_sleepy[index(&p)] = false;
        }
        sleepy.enqueue(packet(i), now);
    }
    for (p, lost) in [(&mut woken, &mut lost_woken), (&mut sleepy, &mut lost_sleepy)] {
        while let Some(due) = p.next_due().filter(|&d| d <= end || p.queued() > 0) {
            while let Some(packet) = p.dequeue(due) {
                lost[index(&packet)] = false;
            }
        }
    }
    ((lost_woken, woken.counters()), (lost_sleepy, sleepy.counters()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..config() })]

    #[test]
    fn skipping_changes_makes_the_same_decisions(
        text in schedule_text(),
        gaps in prop::collection::vec(1u64..400_000_000, 1..150),
    ) {
        let schedule = ImpairSchedule::parse(&text).unwrap();
        let arrivals: Vec<u64> = gaps
            .iter()
            .scan(0, |t, gap| {
                *t += gap;
                Some(*t)
            })
            .collect();
        let (woken, sleepy) = lost_when_woken_and_when_sleepy(&schedule, &arrivals);
        prop_assert_eq!(woken, sleepy, "{}", text);
    }
}
