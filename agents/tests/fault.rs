//! `run --receiver-fault "freeze AT FOR"`: the receiver process stopped
//! (SIGSTOP) for a stretch of each trial's window, on loopback. The
//! kernel goes on acknowledging TCP and queueing datagrams for it, so
//! unlike a partition nothing is lost and no transport backs off into the
//! time after: the backlog is answered as the receiver runs again. The
//! bounds are the mechanism's: nothing lost, and the first answer after
//! the freeze well inside TCP's least RTO (200 ms), which a partition's
//! recovery never is; the signals' times are held to what was configured
//! to within 100 ms, what a busy machine may add to a sleeping thread's
//! wake-up.

mod common;

use common::*;

const MS: u64 = 1_000_000;

#[test]
fn a_frozen_receiver_delays_every_request_and_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = transbench(&[
        "run",
        "--transport",
        "tcp,udp,quic",
        "--rate",
        "200",
        "--duration",
        "3s",
        "--loss-timeout",
        "2s",
        "--receiver-fault",
        "freeze 1s 1s",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = transbench_reports::read_results(&out.join("results.json")).unwrap();
    assert_eq!(r.trials.len(), 3);
    for t in &r.trials {
        let name = t.transport.name();
        let f = t.receiver_fault.as_ref().expect("the fault is recorded");
        assert_eq!(
            (f.kind.as_str(), f.at_ns, f.for_ns),
            ("freeze", 1000 * MS, 1000 * MS)
        );
        assert_eq!(f.error, None, "{name}");
        let (stopped, continued) = (f.stopped_ns.unwrap(), f.continued_ns.unwrap());
        assert!((1000 * MS..1100 * MS).contains(&stopped), "{name}: {f:?}");
        assert!((2000 * MS..2100 * MS).contains(&continued), "{name}: {f:?}");
        let [outage] = &t.outages[..] else {
            panic!("{name}: one outage expected: {:?}", t.outages)
        };
        assert_eq!(outage.dark, "frozen");
        assert!(outage.expected.is_none(), "{name}: no timer predicts a freeze");
        let fates = outage.fates.expect("answers before the freeze give a threshold");
        assert_eq!(
            fates.lost, 0,
            "{name}: the kernel queued what the receiver could not take: {outage:?}"
        );
        assert!(
            fates.delayed >= 150,
            "{name}: the freeze's 200 requests wait for it: {outage:?}"
        );
        let first = outage
            .first_answer_after_heal_ns
            .expect("answered after the freeze");
        assert!(
            first < 200 * MS,
            "{name}: the backlog is answered as the receiver runs again, not after a backoff: {outage:?}"
        );
        eprintln!(
            "{name}: first answer {:.1} ms after the freeze, {} delayed",
            first as f64 / 1e6,
            fates.delayed
        );
    }
}

#[test]
fn a_receiver_fault_is_refused_where_it_cannot_be_measured() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["--workload", "stream", "--receiver-fault", "freeze 1s 1s"],
            "--workload rr",
        ),
        (
            &["--receiver-fault", "freeze 2s 2s", "--duration", "3s"],
            "longer --duration",
        ),
        (&["--receiver-fault", "crash 1s 1s"], "freeze AT FOR"),
    ];
    for (args, says) in cases {
        let mut all = vec!["run", "--transport", "udp"];
        all.extend_from_slice(args);
        let o = transbench(&all);
        assert!(!o.status.success(), "{args:?} ran");
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
}
