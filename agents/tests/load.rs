//! Latency under load end to end: on loopback without root (the probe's
//! phases around the load, every request accounted for), and behind an
//! emulated 50 Mbit/s link with a 1000-packet queue (root), where CUBIC
//! fills the queue, by at most its drain time, and BBR keeps it short.

mod common;

use common::*;
use std::process::Command;
use transbench_reports::TrialResult;

fn load_of(t: &TrialResult) -> &transbench_reports::LoadMetrics {
    assert_eq!(t.workload.name(), "load", "{}", t.id);
    t.load
        .as_ref()
        .unwrap_or_else(|| panic!("{}: no load section", t.id))
}

#[test]
fn the_probe_runs_before_during_and_after_the_load() {
    // Timing matters (the probe's schedule): not beside an impaired link.
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let r = run_workload(
        "load",
        "200ms",
        &[
            "--transport",
            "tcp,quic",
            "--duration",
            "1s",
            "--idle",
            "500ms",
            "--probe-rate",
            "200",
        ],
        dir.path(),
    );
    assert_eq!(r.trials.len(), 2);
    for t in &r.trials {
        // The probe may miss its schedule on a busy machine; nothing else.
        let on_schedule = lagged_only(t);
        let l = load_of(t);
        assert_eq!((l.probe.name(), l.probe_rate), ("udp", 200.0));
        let names: Vec<&str> = l.phases.iter().map(|p| p.phase.as_str()).collect();
        assert_eq!(names, ["before", "during", "after"]);
        // The load starts after the idle phase and its own set-up (a few
        // ms here; the probe's set-up, before its first request, counts
        // against it) and writes for its warm-up and duration.
        assert!(
            (490_000_000..1_000_000_000).contains(&l.load_from_ns),
            "{}: load from {}",
            t.id,
            l.load_from_ns
        );
        assert_eq!(l.load_to_ns - l.load_from_ns, 1_200_000_000, "{}", t.id);
        assert!(
            l.phases.windows(2).all(|w| w[0].to_ns == w[1].from_ns),
            "{}",
            t.id
        );
        // Every probe request due in a phase is in it: 200/s over its span.
        let total: u64 = l.phases.iter().map(|p| p.sent).sum();
        assert_eq!(total, l.probe_samples.len() as u64, "{}", t.id);
        for p in &l.phases {
            let due = (p.to_ns - p.from_ns) as f64 * 200.0 / 1e9;
            // A probe that fell behind never sent some (the trial says so).
            assert!(
                !on_schedule || (p.sent as f64 - due).abs() <= 2.0,
                "{} {}: {} sent, {due:.1} due",
                t.id,
                p.phase,
                p.sent
            );
            assert_eq!(p.lost, 0, "{} {}", t.id, p.phase);
            assert_eq!(p.lat.count, p.sent - p.lost, "{} {}", t.id, p.phase);
        }
        // The trial's latency is the probe's during the load.
        assert_eq!(t.lat, l.phases[1].lat, "{}", t.id);
        assert_eq!(t.counters.sent, l.phases[1].sent);
        let b = t.bulk.as_ref().expect("the load's flows");
        assert!(
            b.goodput_bps > 0.0 && b.bytes_received == b.bytes_sent,
            "{}",
            t.id
        );
        assert!(l.added_p50_ns.is_some() && l.queue_drain_ns.is_none(), "{}", t.id);
    }
}

#[test]
fn options_that_cannot_work_are_refused() {
    for (args, says) in [
        (
            &["--probe", "tcp-mux"][..],
            "--probe tcp-mux: the probe is a request/response flow",
        ),
        (&["--idle", "0s"][..], "--idle 0s is out of range"),
        (
            &["--probe-rate", "-5"][..],
            "--probe-rate -5 must be a positive number",
        ),
        (&["--transport", "udp"][..], "does not run workload load"),
    ] {
        let o = Command::new(BIN)
            .args(["run", "--workload", "load"])
            .args(args)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{args:?} ran");
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn cubic_fills_the_queue_by_at_most_its_drain_time_and_bbr_keeps_it_short() {
    if !have_root() {
        return;
    }
    let _serial = serial();
    let run = |cc: &str| {
        let dir = tempfile::tempdir().unwrap();
        let r = run_workload(
            "load",
            "1s",
            &[
                "--transport",
                "tcp",
                "--cc",
                cc,
                "--impair",
                "rate 50mbit delay 10ms limit 1000",
                "--duration",
                "3s",
                "--idle",
                "1s",
            ],
            dir.path(),
        );
        r.trials.into_iter().next().unwrap()
    };
    retried("load behind rate 50mbit limit 1000", || {
        let (cubic, bbr) = (run("cubic"), run("bbr"));
        let (c, b) = (load_of(&cubic), load_of(&bbr));
        for t in [&cubic, &bbr] {
            if !lagged_only(t) {
                return Err(format!("{}: {:?}", t.id, t.invalid_reasons));
            }
        }
        // 1000 packets of 1514 B at 50 Mbit/s.
        let drain = c.queue_drain_ns.expect("the link's queue is known");
        assert_eq!(drain, 242_240_000);
        let before = c.phases[0].lat.p50 as i64;
        assert!(
            (20_000_000..25_000_000).contains(&before),
            "idle round trip {before}"
        );
        let ms = |ns: i64| ns as f64 / 1e6;
        let (cubic_p50, cubic_p99) = (c.added_p50_ns.unwrap(), c.added_p99_ns.unwrap());
        let bbr_p50 = b.added_p50_ns.unwrap();
        note(&format!(
            "added by the load: cubic p50 {:.1} ms, p99 {:.1} ms; bbr p50 {:.1} ms; a full queue {:.1} ms",
            ms(cubic_p50),
            ms(cubic_p99),
            ms(bbr_p50),
            ms(drain as i64)
        ));
        // A drop-tail queue adds at most its drain time (a forwarder the
        // machine slowed adds more: measured again).
        if cubic_p99 > drain as i64 + 10_000_000 {
            return Err(format!(
                "cubic added {:.1} ms at p99, over a full queue",
                ms(cubic_p99)
            ));
        }
        // CUBIC probes until the queue overflows: most of it stands.
        assert!(
            cubic_p99 > drain as i64 / 2,
            "cubic added only {:.1} ms at p99",
            ms(cubic_p99)
        );
        // BBR paces at the bottleneck's rate: a short queue.
        assert!(
            bbr_p50 < cubic_p50 / 2,
            "bbr added {:.1} ms, cubic {:.1} ms",
            ms(bbr_p50),
            ms(cubic_p50)
        );
        Ok(())
    });
}

#[test]
fn a_load_down_fills_the_reverse_queue_and_both_ways_fill_both() {
    if !have_root() {
        return;
    }
    let _serial = serial();
    let run = |direction: &str, forward: &str| {
        let dir = tempfile::tempdir().unwrap();
        let r = run_workload(
            "load",
            "1s",
            &[
                "--transport",
                "tcp",
                "--cc",
                "cubic",
                "--direction",
                direction,
                "--impair-forward",
                forward,
                "--impair-reverse",
                "rate 50mbit delay 10ms limit 1000",
                "--duration",
                "3s",
                "--idle",
                "1s",
            ],
            dir.path(),
        );
        r.trials.into_iter().next().unwrap()
    };
    retried("load down and both ways behind rate 50mbit limit 1000", || {
        // Down: only the reverse link has a rate, and its queue is the one that fills.
        let down = run("down", "delay 10ms");
        // Both: each direction's queue, one after the other on the probe's round trip.
        let both = run("both", "rate 50mbit delay 10ms limit 1000");
        for t in [&down, &both] {
            if !lagged_only(t) {
                return Err(format!("{}: {:?}", t.id, t.invalid_reasons));
            }
        }
        let ms = |ns: i64| ns as f64 / 1e6;
        for (t, queues) in [(&down, 1), (&both, 2)] {
            let l = load_of(t);
            let drain = l.queue_drain_ns.expect("the link's queues are known") as i64;
            assert_eq!(drain, queues * 242_240_000, "{}", t.id);
            let p99 = l.added_p99_ns.unwrap();
            note(&format!(
                "{}: cubic added p99 {:.1} ms against {:.1} ms of full queues",
                t.id,
                ms(p99),
                ms(drain)
            ));
            if p99 > drain + 10_000_000 {
                return Err(format!(
                    "{}: added {:.1} ms at p99, over the full queues",
                    t.id,
                    ms(p99)
                ));
            }
            // CUBIC fills a drop-tail queue: most of one stands.
            assert!(p99 > 121_000_000, "{}: added only {:.1} ms at p99", t.id, ms(p99));
        }
        Ok(())
    });
}
