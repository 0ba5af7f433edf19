//! Impairment schedules on the testbed's link, as a probe sees them: a
//! datagram each way every millisecond through a schedule of distinct
//! steps (delays of 5, 25 and 50 ms, and a blackhole), and each change's
//! time read off the datagrams' fates. The bound: within 10 ms
//! of the configured time, on linkemu here and on netem in the QEMU guest
//! (`common::in_netem_guest`; see `netem_vm.rs` for the guest).
//!
//! How a change's time is read: a datagram's fate (its delay class, or
//! lost) is fixed when it reaches the emulator, a few microseconds after
//! the sender stamps it. A busy machine only adds to a delay as measured
//! (the receiving thread waits for a CPU), and a sender preempted between
//! stamping and sending moves a datagram's fate later than its stamp: a
//! few datagrams near a change, or anywhere, can show a fate that is not
//! the link's. So the change is placed where a step fits best: the split
//! of the datagrams within 100 ms of the configured time that the fewest
//! of them contradict (a new fate before it, an old one after), and that
//! split must lie within 10 ms of the configured time.

mod common;

use common::*;
use std::time::Duration;

use linkemu::ImpairSchedule;
use testbed::probe::{trace, OneWay, ProbeTrace};
use testbed::{Backend, Testbed, RECEIVER_ADDR, SENDER_ADDR};
use transbench_wire::clock::mono_now_ns;

const MS: u64 = 1_000_000;
const IN_GUEST: &str = "TRANSBENCH_SCHEDULE_GUEST";

/// Distinct fates: the delay classes of the schedules below, or lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Lost,
    Delay5,
    Delay25,
    Delay50,
}

/// Midway between the classes: a busy machine adds up to 10 ms before
/// a datagram is misread as the next class.
fn fate(delay_ns: Option<u64>) -> Fate {
    match delay_ns {
        None => Fate::Lost,
        Some(d) if d < 15 * MS => Fate::Delay5,
        Some(d) if d < 37 * MS => Fate::Delay25,
        Some(_) => Fate::Delay50,
    }
}

/// Each datagram's send time and fate, in sending order.
fn fates(t: &ProbeTrace) -> Vec<(u64, Fate)> {
    let mut delay: Vec<Option<u64>> = vec![None; t.sent as usize];
    for a in &t.arrivals {
        delay[a.seq as usize].get_or_insert(a.received_ns - a.sent_ns);
    }
    t.sent_at.iter().zip(delay).map(|(&s, d)| (s, fate(d))).collect()
}

/// Where the fate turned from `old` to `new` around `at` (ns since the
/// epoch): the split among the datagrams within 100 ms that the fewest
/// contradict, as the interval between the datagrams on either side of
/// it (offsets from `at`; the one nearest `at` where several splits tie),
/// and how many datagrams contradict it.
fn change_seen(fates: &[(u64, Fate)], epoch: u64, at: u64, old: Fate, new: Fate) -> ((i64, i64), usize) {
    const WINDOW: i64 = 100 * MS as i64;
    // Across a blackout only lost or delivered counts: a receiver starved
    // after one reads the first deliveries' delays high.
    let delivered = if old == Fate::Lost { new } else { old };
    let blackout = old == Fate::Lost || new == Fate::Lost;
    let near: Vec<(i64, Fate)> = fates
        .iter()
        .map(|&(s, f)| (s, if blackout && f != Fate::Lost { delivered } else { f }))
        .map(|(s, f)| (s as i64 - (epoch + at) as i64, f))
        .filter(|(d, f)| d.abs() <= WINDOW && (*f == old || *f == new))
        .collect();
    assert!(
        near.iter().any(|(_, f)| *f == old) && near.iter().any(|(_, f)| *f == new),
        "no change from {old:?} to {new:?} near {} ms: {near:?}",
        at / MS
    );
    let distance = |(lo, hi): (i64, i64)| if lo > 0 { lo } else { (-hi).max(0) };
    // Splitting before datagram k: the new fates before it and the old
    // ones from it on contradict the split.
    (0..=near.len())
        .map(|k| {
            let against = near[..k].iter().filter(|(_, f)| *f == new).count()
                + near[k..].iter().filter(|(_, f)| *f == old).count();
            let lo = k.checked_sub(1).map_or(-WINDOW, |i| near[i].0);
            let hi = near.get(k).map_or(WINDOW, |n| n.0);
            ((lo, hi), against)
        })
        .min_by_key(|&(interval, against)| (against, distance(interval)))
        .expect("at least one split")
}

/// The schedules, the changes a probe must see, and the check of each.
/// Every probe must agree with every change's configured time (its
/// bracket reaching within 10 ms of it) that the backend began on time.
/// A change is placed once a probe brackets it within 20 ms; a probe
/// starved of CPU around a change (its sender or receiver late: a gap in
/// the datagrams), or a changer that began late, cannot place it, so the
/// probe runs again, five times at most, until every change has been
/// placed by one of them.
fn probe_the_schedules(backend: Backend) -> Vec<String> {
    let mut placed: Vec<(String, String)> = Vec::new();
    for attempt in 1..=5 {
        for (change, line, narrow) in probe_once(backend) {
            match narrow {
                true if !placed.iter().any(|(c, _)| *c == change) => placed.push((change, line)),
                true => {}
                false => eprintln!("attempt {attempt}: {line}: not placed (a gap, or the changer late)"),
            }
        }
        let all = if backend == Backend::Netem { 4 } else { 6 };
        if placed.len() == all {
            return placed.into_iter().map(|(_, line)| line).collect();
        }
    }
    panic!("five probes left gaps around some change: placed only {placed:?}");
}

/// Each change: which, its line, and whether this probe placed it.
fn probe_once(backend: Backend) -> Vec<(String, String, bool)> {
    let forward =
        ImpairSchedule::parse("0s: delay 5ms; 1s: delay 50ms; 2s: loss 100%; 3s: delay 5ms").unwrap();
    let reverse = ImpairSchedule::parse("0s: delay 5ms; partition 1500ms 1s; 3200ms: delay 25ms").unwrap();
    let bed = Testbed::up_scheduled(backend, &forward, &reverse, 7).unwrap();
    let epoch = mono_now_ns() + 500 * MS;
    bed.start_schedules(epoch);
    let forward_path = OneWay {
        from_ns: &bed.sender,
        from: SENDER_ADDR,
        to_ns: &bed.receiver,
        to: RECEIVER_ADDR,
    };
    let reverse_path = OneWay {
        from_ns: &bed.receiver,
        from: RECEIVER_ADDR,
        to_ns: &bed.sender,
        to: SENDER_ADDR,
    };
    let run = |path| {
        trace(
            path,
            4000,
            Duration::from_millis(1),
            Duration::from_millis(200),
            false,
        )
        .unwrap()
    };
    let (f, r) = std::thread::scope(|s| {
        let f = s.spawn(|| run(forward_path));
        let r = s.spawn(|| run(reverse_path));
        (f.join().unwrap(), r.join().unwrap())
    });
    let changes = bed.hold_schedules();
    let mut seen = Vec::new();
    for (direction, t, expect) in [
        (
            "forward",
            &f,
            &[
                (1000, Fate::Delay5, Fate::Delay50),
                (2000, Fate::Delay50, Fate::Lost),
                (3000, Fate::Lost, Fate::Delay5),
            ][..],
        ),
        (
            "reverse",
            &r,
            &[
                (1500, Fate::Delay5, Fate::Lost),
                (2500, Fate::Lost, Fate::Delay5),
                (3200, Fate::Delay5, Fate::Delay25),
            ][..],
        ),
    ] {
        let fates = fates(t);
        for &(at_ms, old, new) in expect {
            let ((lo, hi), against) = change_seen(&fates, epoch, at_ms * MS, old, new);
            let recorded = changes
                .iter()
                .find(|c| c.direction == direction && c.at_ns == at_ms * MS)
                .unwrap_or_else(|| panic!("no record of the {direction} change at {at_ms} ms: {changes:?}"));
            let line = format!(
                "{} {direction} change at {at_ms} ms: seen between {:+.2} and {:+.2} ms ({against} datagrams \
                 against it); recorded issued {:+.2} applied {:+.2} ms",
                backend.name(),
                lo as f64 / 1e6,
                hi as f64 / 1e6,
                (recorded.issued_ns as f64 - (at_ms * MS) as f64) / 1e6,
                (recorded.applied_ns as f64 - (at_ms * MS) as f64) / 1e6,
            );
            assert!(recorded.error.is_none(), "{line}: {:?}", recorded.error);
            // A change the backend itself made more than 10 ms late (its
            // thread got no CPU: the guest's vCPU starved by a busy host)
            // says so in its record; this probe cannot hold it to its time.
            // In the emulated guest a starved receiver reads delays high for
            // tens of ms, so a change between two delays cannot be placed
            // there: only the blackouts' edges (lost or delivered) are.
            if backend == Backend::Netem && old != Fate::Lost && new != Fate::Lost {
                continue;
            }
            if recorded.applied_ns > (at_ms + 10) * MS {
                seen.push((format!("{direction} {at_ms}"), line, false));
                continue;
            }
            assert!(lo <= 10 * MS as i64 && hi >= -10 * (MS as i64), "{line}");
            seen.push((format!("{direction} {at_ms}"), line, hi - lo <= 20 * MS as i64));
        }
    }
    // Held: the reverse schedule ended at 25 ms, and is back at its
    // first profile (5 ms, nothing lost). A busy machine makes some
    // datagrams look later, never sooner: a link still at 25 ms would
    // show none under 15 ms.
    let held = fates(
        &trace(
            reverse_path,
            200,
            Duration::from_millis(1),
            Duration::from_millis(100),
            false,
        )
        .unwrap(),
    );
    let as_first = held.iter().filter(|(_, f)| *f == Fate::Delay5).count();
    assert!(
        as_first >= 100 && held.iter().all(|(_, f)| *f != Fate::Lost),
        "held: {held:?}"
    );
    seen
}

#[test]
fn schedule_changes_as_probed_lie_within_10ms_on_linkemu() {
    if !have_root() {
        return;
    }
    let _serial = serial();
    for line in probe_the_schedules(Backend::Linkemu) {
        eprintln!("{line}");
    }
}

#[test]
fn schedule_changes_as_probed_lie_within_10ms_on_netem_in_a_guest_kernel() {
    if std::env::var(IN_GUEST).is_ok() {
        assert!(
            testbed::probe_netem().unwrap().is_some(),
            "the guest kernel has netem"
        );
        for line in probe_the_schedules(Backend::Netem) {
            println!("guest: {line}");
        }
        return;
    }
    if !have_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = "schedule_changes_as_probed_lie_within_10ms_on_netem_in_a_guest_kernel";
    in_netem_guest(name, IN_GUEST, dir.path(), 300);
}

/// One open-loop rr trial of `transport` at 200 requests/s through a
/// blackout both ways of `partition` from 2 s, on linkemu with 5 ms each
/// way: its outage, with the first answer after the heal as measured and
/// as its timer predicts, how long the timer had waited by then, and a
/// line saying all that.
struct Recovered {
    trial: transbench_reports::TrialResult,
    outage: transbench_reports::OutageMetrics,
    measured_ns: u64,
    expected_ns: u64,
    waited_ns: u64,
    retransmission: Option<u64>,
    line: String,
}

fn recover_through_a_blackout(
    transport: &str,
    partition: &str,
    duration: &str,
    loss_timeout: &str,
) -> Recovered {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let schedule = format!("0s: delay 5ms; partition 2s {partition}");
    let o = transbench(&[
        "run",
        "--transport",
        transport,
        "--rate",
        "200",
        "--duration",
        duration,
        "--loss-timeout",
        loss_timeout,
        "--impair-backend",
        "linkemu",
        "--impair-schedule",
        &schedule,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = transbench_reports::read_results(&out.join("results.json")).unwrap();
    let trial = &r.trials[0];
    let [outage] = &trial.outages[..] else {
        panic!("one outage expected: {:?}", trial.outages)
    };
    let e = outage
        .expected
        .as_ref()
        .unwrap_or_else(|| panic!("a {transport} trial predicts its recovery: {outage:?}"));
    let expected_ns = e
        .first_answer_after_heal_ns
        .unwrap_or_else(|| panic!("recovers before it gives up: {e:?}"));
    let measured_ns = outage
        .first_answer_after_heal_ns
        .expect("answered after the heal");
    let line = format!(
        "{transport}, partition {partition}: first answer {:.1} ms after the heal, predicted {:.1} ms \
         (retransmission {:?}, restarted {:?} ms after the heal); {}",
        measured_ns as f64 / 1e6,
        expected_ns as f64 / 1e6,
        e.retransmission,
        e.restarted_after_heal_ns.map(|r| r / MS),
        e.timer
    );
    eprintln!("{line}");
    Recovered {
        measured_ns,
        expected_ns,
        waited_ns: outage.end_ns - outage.start_ns - e.timer_start_after_start_ns + expected_ns,
        retransmission: e.retransmission,
        line,
        outage: outage.clone(),
        trial: trial.clone(),
    }
}

/// Through partitions of 1 s and 3 s, `transport`'s first answer after
/// the heal comes at most `early_ns` before its timer predicts and at most
/// `late_ns(waited)` after (`waited`: the timer's whole wait), after at
/// least a second retransmission; and its timeline shows the outage.
fn recovers_as_its_timer_says(
    transport: &str,
    duration: &str,
    loss_timeout: &str,
    early_ns: u64,
    late_ns: fn(u64) -> u64,
) {
    for partition in ["1s", "3s"] {
        let r = recover_through_a_blackout(transport, partition, duration, loss_timeout);
        assert!(
            r.measured_ns + early_ns >= r.expected_ns
                && r.measured_ns <= r.expected_ns + late_ns(r.waited_ns),
            "{}",
            r.line
        );
        assert!(
            r.retransmission >= Some(2),
            "a partition of {partition} outlasts the first timeout: {}",
            r.line
        );
        check_timeline_around(&r.trial, r.outage.start_ns, r.outage.end_ns);
    }
}

/// TCP through a blackout of T (1 s and 3 s, both ways) in an open-loop rr
/// trial: the first answer after the heal comes when Linux's RTO backoff,
/// read from the connection's TCP_INFO, says. The kernel's timer wheel
/// (HZ 250 here) rounds each wait up to its level's granularity, at most
/// an eighth of the wait; the waits chain, so the retransmission that gets
/// through may be late by up to an eighth of all of them, and a busy
/// machine adds to the answer's way back: the bound is that eighth plus
/// 30 ms, and never earlier than predicted but for 5 ms of reading
/// resolution. Whether the trial kept its send schedule does not matter
/// here (the backoff is the kernel's): validity is not checked.
#[test]
fn tcp_recovers_from_a_blackout_when_its_rto_backoff_says() {
    if !have_root() {
        return;
    }
    let _serial = serial();
    recovers_as_its_timer_says("tcp", "7s", "6s", 5 * MS, |waited| waited / 8 + 30 * MS);
}

/// QUIC through a blackout both ways of 1 s and of 3 s: the first answer
/// after the heal comes when quinn's probe timeout, read off the probes it
/// sent during the outage, says; and when the server's probe is heard
/// first (3 s here), it acknowledges what the server got just before the
/// outage, gives quinn's RTT estimate a sample as long as the outage and
/// resets its backoff, and the restarted timer says. quinn's timers are
/// the runtime's (1 ms), so the bound is tighter than TCP's: at most
/// 15 ms earlier (a busy machine reads quinn's sends late, which moves the
/// prediction later), at most 40 ms and 1 % of the waits later (it delays
/// the probe's sending and the answer's way back). Validity is not
/// checked: the open-loop client falls behind its schedule while its
/// congestion window is full, which is the point.
#[test]
fn quic_recovers_from_a_blackout_when_its_probe_timeout_says() {
    if !have_root() {
        return;
    }
    let _serial = serial();
    recovers_as_its_timer_says("quic", "9s", "8s", 15 * MS, |waited| waited / 100 + 40 * MS);
}

/// Multistream through a blackout both ways of 1 s (8 streams of 25
/// messages a second: 200 sent into it): UDP loses what was sent into the
/// blackout, within 4 (20 ms of messages, whose fate a sender running late
/// moves across an edge), and delivers again at once; TCP
/// loses nothing and delays what the blackout held. Validity is not
/// checked: the outage is what is measured, not the schedule's keeping.
#[test]
fn multistream_outages_lose_datagrams_and_delay_streams() {
    if !have_root() {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = transbench(&[
        "run",
        "--workload",
        "multistream",
        "--transport",
        "udp,tcp-n",
        "--duration",
        "4s",
        "--loss-timeout",
        "3s",
        "--impair-backend",
        "linkemu",
        "--impair-schedule",
        "0s: delay 5ms; partition 2s 1s",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = transbench_reports::read_results(&out.join("results.json")).unwrap();
    for t in r.trials.iter().filter(|t| !t.baseline) {
        let name = t.transport.name();
        let [outage] = &t.outages[..] else {
            panic!("{name}: one outage expected: {:?}", t.outages)
        };
        let fates = outage.fates.expect("a threshold from before the outage");
        eprintln!("{name}: {outage:?}");
        if t.transport.capabilities().reliable {
            assert_eq!(fates.lost, 0, "{name}: {outage:?}");
            assert!(
                fates.delayed >= 150,
                "{name}: the blackout's messages wait: {outage:?}"
            );
        } else {
            assert!((196..=204).contains(&fates.lost), "{name}: {outage:?}");
            let first = outage
                .first_answer_after_heal_ns
                .expect("delivered after the heal");
            assert!(first < 100 * MS, "{name}: datagrams flow at the heal: {outage:?}");
        }
    }
}

/// A trial's timeline through an outage from `start_ns` to `end_ns`
/// (schedule time) on a 5 ms path, at 200 requests a second: every
/// measured request and answer in one bin; no answer delivered from 200
/// ms into the outage (answers already past the cut arrive within 5 ms;
/// the rest is for a busy receiving thread) to the heal, exactly; and
/// from 0.5 s to the outage about what was offered: at least 80 % (a
/// busy machine delays answers, and TCP loses none), and at most one bin
/// more (answers to the bin before).
fn check_timeline_around(trial: &transbench_reports::TrialResult, start_ns: u64, end_ns: u64) {
    let timeline = trial
        .schedule_timeline
        .as_ref()
        .expect("an open-loop trial under a schedule keeps its timeline");
    assert_eq!(timeline.bin_ns, 100 * MS);
    assert_eq!(timeline.bins.len() as u64, trial.duration_ns.div_ceil(100 * MS));
    let sum = |bins: &[transbench_reports::TimelineBin], of: fn(&transbench_reports::TimelineBin) -> u64| {
        bins.iter().map(of).sum::<u64>()
    };
    assert_eq!(sum(&timeline.bins, |b| b.offered), trial.counters.sent);
    assert_eq!(sum(&timeline.bins, |b| b.answered), trial.counters.received);
    let bin = |ns: u64| (ns / timeline.bin_ns) as usize;
    let dark = &timeline.bins[bin(start_ns + 200 * MS)..bin(end_ns)];
    assert!(
        dark.iter().all(|b| b.delivered == 0),
        "delivered while dark: {dark:?}"
    );
    let before = &timeline.bins[5..bin(start_ns)];
    let (offered, delivered) = (sum(before, |b| b.offered), sum(before, |b| b.delivered));
    let line = format!("before the outage: {delivered} answers delivered, {offered} requests offered");
    eprintln!("{line}");
    assert!(
        delivered * 10 >= offered * 8 && delivered <= offered + 20,
        "{line}"
    );
}

/// A schedule that only changes the delay (no outage) keeps a timeline
/// too: on a 5 ms path that becomes 50 ms each way at 1 s, every request
/// sent from 1 s on takes 100 ms or more (a busy machine only adds), and
/// those sent before 0.9 s under 100 ms (their answers are back before
/// the change unless a thread stalls for 90 ms).
#[test]
fn a_delay_step_gets_a_timeline_too() {
    if !have_root() {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = transbench(&[
        "run",
        "--transport",
        "udp",
        "--rate",
        "200",
        "--duration",
        "2s",
        "--warmup",
        "500ms",
        "--impair-backend",
        "linkemu",
        "--impair-schedule",
        "0s: delay 5ms; 1s: delay 50ms",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = transbench_reports::read_results(&out.join("results.json")).unwrap();
    let trial = &r.trials[0];
    assert!(trial.outages.is_empty(), "{:?}", trial.outages);
    let timeline = trial
        .schedule_timeline
        .as_ref()
        .expect("a schedule without outages keeps a timeline too");
    let p50 = |b: &transbench_reports::TimelineBin| b.p50_ns.unwrap_or(0) / MS;
    let before: Vec<u64> = timeline.bins[1..9].iter().map(p50).collect();
    let after: Vec<u64> = timeline.bins[10..]
        .iter()
        .filter(|b| b.answered > 0)
        .map(p50)
        .collect();
    eprintln!("p50 per 100 ms, ms: before {before:?}, after {after:?}");
    assert!(before.iter().all(|&p| p > 0 && p < 100), "{before:?}");
    assert!(after.len() >= 8 && after.iter().all(|&p| p >= 100), "{after:?}");
}

/// A path that rejects, both ways, under open-loop rr, and what each
/// transport reports. `reject tcp-reset`: TCP's next request after the
/// start meets a reset, so it detects ECONNRESET within a few round trips
/// (bound: 100 ms, ten of this path's, where the reset itself takes
/// well under one: a busy machine can hold the receiving task up); the
/// connection is gone, so the trial ends there, invalid with the reason
/// and its outage unrecovered, and the run goes on to its next trial.
/// UDP's socket asks for ICMP errors and reports the host unreachable as
/// EHOSTUNREACH, and works on: its window is whole. Plain `reject`: UDP
/// the same; TCP hears no error (Linux keeps ICMP unreachable from an
/// established connection) and recovers after the heal. Validity for the
/// sender's schedule is not checked (a busy machine's business).
#[test]
fn a_rejecting_path_is_detected_as_the_error_the_transport_reports() {
    if !have_root() {
        return;
    }
    let _serial = serial();
    let run = |transports: &str, kind: &str| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let schedule = format!("0s: delay 5ms; partition 2s 1s {kind}");
        let o = transbench(&[
            "run",
            "--transport",
            transports,
            "--rate",
            "200",
            "--warmup",
            "500ms",
            "--duration",
            "4s",
            "--loss-timeout",
            "2s",
            "--impair-schedule",
            &schedule,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{kind}: {}", stderr(&o));
        transbench_reports::read_results(&out.join("results.json")).unwrap()
    };
    let outage = |t: &transbench_reports::TrialResult| {
        let [outage] = &t.outages[..] else {
            panic!("{}: one outage expected: {:?}", t.id, t.outages)
        };
        eprintln!(
            "{}: {} ({:?}) detected as {:?} after {:?} ns; first answer {:?} ns after the heal",
            t.id,
            outage.dark,
            outage.reject,
            outage.detected_as,
            outage.detected_after_start_ns,
            outage.first_answer_after_heal_ns
        );
        outage.clone()
    };
    let resets = run("tcp,udp", "reject tcp-reset");
    let [tcp, udp] = &resets.trials[..] else {
        panic!("the run goes on after the reset: {:?}", resets.trials.len())
    };
    let o = outage(tcp);
    assert_eq!(o.reject.as_deref(), Some("tcp-reset"));
    assert_eq!(o.detected_as.as_deref(), Some("ECONNRESET"), "{o:?}");
    assert!(o.detected_after_start_ns.unwrap() < 100 * MS, "{o:?}");
    assert_eq!(o.first_answer_after_heal_ns, None, "the connection is gone");
    assert!(o.expected.is_none(), "no backoff theory for a reset");
    assert!(!tcp.valid, "cut short by the reset");
    let reasons = tcp.invalid_reasons.join("; ");
    assert!(
        reasons.contains("the data plane failed after") && reasons.contains("Connection reset"),
        "{reasons}"
    );
    let icmp = run("udp,tcp", "reject");
    let [udp_icmp, tcp_icmp] = &icmp.trials[..] else {
        panic!("two trials: {:?}", icmp.trials.len())
    };
    let o = outage(tcp_icmp);
    assert_eq!(o.reject.as_deref(), Some("icmp"));
    assert!(
        matches!(o.detected_as.as_deref(), None | Some("application timeout")),
        "an established connection hears no ICMP error: {o:?}"
    );
    assert!(
        o.first_answer_after_heal_ns.is_some() && o.expected.is_none(),
        "{o:?}"
    );
    // UDP gets ICMP under either.
    for (trial, kind) in [(udp, "tcp-reset"), (udp_icmp, "icmp")] {
        let o = outage(trial);
        assert_eq!(o.reject.as_deref(), Some(kind));
        assert_eq!(o.detected_as.as_deref(), Some("EHOSTUNREACH"), "{o:?}");
        assert!(o.detected_after_start_ns.unwrap() < 100 * MS, "{o:?}");
        assert!(o.first_answer_after_heal_ns.is_some(), "{o:?}");
        assert!(
            trial.counters.icmp_errors > 0 && trial.counters.errors == 0,
            "{:?}",
            trial.counters
        );
        assert_eq!(trial.duration_ns, 4_000 * MS, "the window whole");
    }
}
