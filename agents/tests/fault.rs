//! `run --receiver-fault`, on loopback. "freeze AT FOR": the receiver
//! process stopped (SIGSTOP) for a stretch of each trial's window. The
//! kernel goes on acknowledging TCP and queueing datagrams for it, so
//! unlike a partition nothing is lost and no transport backs off into the
//! time after: the backlog is answered as the receiver runs again. The
//! bounds are the mechanism's: nothing lost, and the first answer after
//! the freeze well inside TCP's least RTO (200 ms), which a partition's
//! recovery never is; the signals' times are held to what was configured
//! to within 100 ms, what a busy machine may add to a sleeping thread's
//! wake-up. "crash AT FOR": the receiver killed (SIGKILL) and started
//! again; its kernel closes its sockets, so the client hears of it at
//! once, and answers come again only on a new session.

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

/// A crash of 1 s at 200 requests/s, the client redialing every 50 ms.
/// Bounds: the client hears of the crash from the kernel of the killed
/// receiver within 100 ms of the kill (the next request goes 5 ms after
/// it; the rest is what a busy machine adds), by the error each transport
/// gives a closed peer; its redials are refused while nothing listens, so
/// the 200 requests of the crash (150 allowing for a late kill) could not
/// be sent, and the first that succeeds comes after the restart began,
/// within a redial interval and a session's set-up of the receiver
/// listening (1 s on a busy machine); the receiver started again saw only
/// the requests after it.
/// None of this is latency: a trial the busy machine made late (send lag)
/// is checked all the same.
#[test]
fn a_crashed_receiver_is_heard_at_once_and_answers_again_after_a_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let results = run_workload_at_normal_priority(
        "rr",
        "500ms",
        &[
            "--transport",
            "tcp,tcp+tls,udp",
            "--rate",
            "200",
            "--duration",
            "3s",
            "--receiver-fault",
            "crash 1s 1s",
            "--reconnect",
            "50ms",
        ],
        dir.path(),
    );
    for t in &results.trials {
        let name = t.transport.name();
        // Valid, or late only.
        lagged_only(t);
        let f = t.receiver_fault.as_ref().expect("the fault is recorded");
        assert_eq!((f.kind.as_str(), f.error.as_deref()), ("crash", None), "{name}");
        let (killed, listening) = (f.stopped_ns.unwrap(), f.continued_ns.unwrap());
        assert!((1000 * MS..1300 * MS).contains(&killed), "{name}: {f:?}");
        assert!((2000 * MS..2900 * MS).contains(&listening), "{name}: {f:?}");
        let [outage] = &t.outages[..] else {
            panic!("{name}: one outage expected: {:?}", t.outages)
        };
        assert_eq!(outage.dark, "crashed");
        let closed = match name {
            "udp" => &["ECONNREFUSED"][..],
            _ => &["EOF", "ECONNRESET"][..],
        };
        assert!(
            closed.contains(&outage.detected_as.as_deref().unwrap_or("none")),
            "{name}: the kernel of the killed receiver says it: {outage:?}"
        );
        let detected = outage.detected_after_start_ns.unwrap();
        assert!(detected < killed - 1000 * MS + 100 * MS, "{name}: {outage:?}");
        let re = t.reconnects.as_ref().expect("reconnects are recorded");
        assert_eq!((re.every_ns, re.lost), (50 * MS, 1), "{name}: {re:?}");
        assert!(
            re.failed_attempts >= 1,
            "{name}: refused while nothing listened: {re:?}"
        );
        let [up] = re.up_ns[..] else {
            panic!("{name}: one reconnect expected: {re:?}")
        };
        // The restart begins 2 s in; it is stamped once the receiver
        // said it listens, which a redial may beat.
        assert!(
            up >= (2000 * MS) as i64 && up < (listening + 1000 * MS) as i64,
            "{name}: reconnected once the receiver was started again ({listening} ns): {re:?}"
        );
        assert!(
            re.unsendable >= 150,
            "{name}: the crash's requests could not be sent: {re:?}"
        );
        let first = outage
            .first_answer_after_heal_ns
            .expect("answered after the restart");
        assert!(
            (outage.end_ns + first) as i64 >= up,
            "{name}: no answer before the new session: {outage:?} {re:?}"
        );
        assert!(
            !t.receiver_report_missing,
            "{name}: the new session's receiver reports"
        );
        assert!(
            t.receiver.requests > 0 && t.receiver.requests < t.counters.sent,
            "{name}: the receiver started again saw only what came after it: {} of {}",
            t.receiver.requests,
            t.counters.sent
        );
        eprintln!(
            "{name}: crash heard {:.1} ms in as {}, reconnected {:.1} ms after the restart, {} attempts refused",
            detected as f64 / 1e6,
            outage.detected_as.as_deref().unwrap_or("none"),
            (up - listening as i64) as f64 / 1e6,
            re.failed_attempts
        );
    }
}

/// Without --reconnect: TCP's sending ends with its connection (the
/// trial invalid, with nothing to ask for the receiver's report), UDP's
/// goes on into a receiver started again that knows nothing of the
/// session; and the next trial runs against that receiver.
#[test]
fn without_reconnects_a_crash_ends_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_workload_at_normal_priority(
        "rr",
        "500ms",
        &[
            "--transport",
            "tcp,udp,tcp",
            "--rate",
            "200",
            "--duration",
            "3s",
            "--receiver-fault",
            "crash 1s 1s",
        ],
        dir.path(),
    );
    assert_eq!(r.trials.len(), 3);
    for t in &r.trials {
        let name = &t.id;
        assert!(
            t.receiver_report_missing,
            "{name}: the session died with the receiver"
        );
        assert!(t.reconnects.is_none());
        match t.transport.name() {
            "tcp" => {
                assert!(!t.valid, "{name}");
                assert!(
                    t.invalid_reasons.iter().any(|r| r.contains("data plane failed")),
                    "{name}: {:?}",
                    t.invalid_reasons
                );
                // 200 measured requests before the crash, a few after.
                assert!(t.counters.sent < 300, "{name}: no sends after the crash");
            }
            _ => {
                // Every request from the kill to the window's end is lost.
                let outage = &t.outages[0];
                let lost = outage.fates.expect("answers before the crash").lost;
                assert!(lost >= 150, "{name}: {outage:?}");
                assert_eq!(outage.first_answer_after_heal_ns, None, "{name}");
            }
        }
    }
}

/// `sender --reconnect` against a receiver this test kills and starts
/// again on its address by hand, as a lab host's supervisor would: the
/// session dies with it and the sender carries on on a new one. The
/// receiver is down for 500 ms of the 3 s window (its restart takes a few
/// more), so at least 50 of the 600 requests are lost (100 expected), all
/// of them due while the connection was down or in its last sends; none
/// is an error.
#[test]
fn a_sender_reconnects_to_a_receiver_restarted_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let mut receiver = ReceiverGuard::start(&[]);
    let addr = receiver.addr;
    let sender = sender_command(addr, "tcp")
        .args([
            "--rate",
            "200",
            "--duration",
            "3s",
            "--warmup",
            "500ms",
            "--reconnect",
            "50ms",
            "--out",
        ])
        .arg(&out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    receiver.child_mut().kill().unwrap();
    receiver.child_mut().wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let _again = ReceiverGuard::start_on(addr);
    let o = wait_cleanly(sender);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = &transbench_reports::read_results(&out).unwrap().trials[0];
    lagged_only(t);
    let re = t.reconnects.as_ref().expect("reconnects are recorded");
    assert_eq!((re.lost, re.up_ns.len()), (1, 1), "{re:?}");
    assert!(re.failed_attempts >= 1, "refused while nothing listened: {re:?}");
    let c = &t.counters;
    assert_eq!(c.errors, 0);
    assert!(c.lost >= 50 && c.lost <= re.unsendable + 10, "{c:?} {re:?}");
    assert!(!t.receiver_report_missing, "the new session's receiver reports");
    assert!(
        t.receiver.requests > 0 && t.receiver.requests < c.sent,
        "{:?}",
        t.receiver
    );
}

#[test]
fn a_receiver_fault_is_refused_where_it_cannot_be_measured() {
    let cases: [(&[&str], &str); 6] = [
        (
            &["--workload", "stream", "--receiver-fault", "freeze 1s 1s"],
            "--workload rr",
        ),
        (
            &["--receiver-fault", "freeze 2s 2s", "--duration", "3s"],
            "longer --duration",
        ),
        (
            &["--receiver-fault", "hang 1s 1s"],
            "freeze AT FOR, or crash AT FOR",
        ),
        (
            &["--workload", "multistream", "--receiver-fault", "crash 1s 1s"],
            "runs with rr",
        ),
        (
            &["--receiver-fault", "crash 1s 1s", "--retry", "timeout:100ms"],
            "counts per request id die with the receiver",
        ),
        (&["--reconnect", "100ms", "--closed-loop"], "drop --closed-loop"),
    ];
    for (args, says) in cases {
        let mut all = vec!["run", "--transport", "udp"];
        all.extend_from_slice(args);
        let o = transbench(&all);
        assert!(!o.status.success(), "{args:?} ran");
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
}
