//! Delivery semantics end to end: rr with a retry policy over a path
//! that loses responses and no request (linkemu: a partition of the way
//! back alone, 400 ms of the 1.5 s window), with and without idempotency
//! keys. Needs root: in CI
//! (CI=true) a missing privilege fails the test; elsewhere it is skipped
//! with the reason printed.
//!
//! The claims are counts, and exact where the mechanism makes them so.
//! On UDP nothing is lost on the way out (the link's forward direction
//! has no profile, and the receiver waits after Stop for every send to
//! arrive), so each retry reaches the receiver and is one duplicate
//! there. On TCP a retry arrives after its first send (one ordered byte
//! stream), so it too is one duplicate; but whether it arrives before the
//! trial ends is TCP's affair: the receiver's responses back off on the
//! lossy way back, and while it waits to write them it reads no request.
//! Which requests get retried depends on where the partition falls among
//! them and on how fast the machine answers; the equalities hold whatever
//! they are.

mod common;

use common::*;
use transbench_reports::{DeliveryMetrics, RunResults, TrialResult};
use transbench_wire::Transport;

fn partitioned_responses(extra: &[&str]) -> RunResults {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--transport",
        "udp,tcp",
        "--retry",
        "timeout:30ms,max:3",
        "--impair-backend",
        "linkemu",
        "--impair-schedule-reverse",
        "0s: delay 5ms; partition 500ms 400ms",
        "--rate",
        "200",
        "--duration",
        "1500ms",
        "--loss-timeout",
        "1s",
    ];
    args.extend_from_slice(extra);
    run_workload("rr", "300ms", &args, dir.path())
}

fn delivery(t: &TrialResult) -> &DeliveryMetrics {
    t.delivery
        .as_ref()
        .unwrap_or_else(|| panic!("{}: no delivery section", t.transport))
}

/// What holds with or without keys.
fn check_common(t: &TrialResult) {
    let d = delivery(t);
    let who = t.transport;
    assert_eq!(d.retry, "timeout:30ms,max:3");
    assert_eq!(d.requests, t.counters.sent, "{who}");
    assert_eq!(d.answered + d.unanswered, d.requests, "{who}");
    assert!(
        d.retries_sent > 0,
        "{who}: the responses partitioned for 400 ms, yet no retry: {d:?}"
    );
    // Each retry that reached the receiver is a duplicate there: the
    // acceptance's equality.
    assert_eq!(d.duplicates, d.retries_arrived, "{who}: {d:?}");
    match who {
        Transport::Udp => {
            assert_eq!(
                d.retries_arrived, d.retries_sent,
                "{who}: every retry arrives: {d:?}"
            );
            assert_eq!(
                d.never_processed, 0,
                "{who}: no request is lost on the way out: {d:?}"
            );
        }
        _ => assert!(d.retries_arrived <= d.retries_sent, "{who}: {d:?}"),
    }
    assert!(d.responses_to_retries <= d.retries_sent, "{who}: {d:?}");
    // Answers to the retries are theirs, not the path's duplicates.
    assert_eq!(t.counters.duplicates, 0, "{who}");
}

#[test]
fn duplicates_at_the_receiver_equal_the_retries_that_reached_it() {
    if !have_root() {
        return;
    }
    let _serial = serial();
    let results = partitioned_responses(&[]);
    assert_eq!(results.trials.len(), 2);
    for t in &results.trials {
        check_common(t);
        let d = delivery(t);
        assert!(!d.idempotency_keys);
        // Without keys every arrival is processed.
        assert_eq!(d.extra_processings, d.duplicates, "{}: {d:?}", t.transport);
        assert_eq!(d.answered_from_store, 0);
        assert_eq!(
            d.processed_more_than_once > 0,
            d.retries_arrived > 0,
            "{}: {d:?}",
            t.transport
        );
        assert_eq!(
            d.more_than_once_ids.len() as u64,
            d.processed_more_than_once.min(20)
        );
    }
    let udp = results
        .trials
        .iter()
        .find(|t| t.transport == Transport::Udp)
        .unwrap();
    assert!(udp.udp.is_some(), "the sequence tracker still runs");
}

#[test]
fn idempotency_keys_bring_processed_more_than_once_to_zero() {
    if !have_root() {
        return;
    }
    let _serial = serial();
    let results = partitioned_responses(&["--idempotency-keys"]);
    assert_eq!(results.trials.len(), 2);
    for t in &results.trials {
        check_common(t);
        let d = delivery(t);
        assert!(d.idempotency_keys);
        assert_eq!(
            (d.processed_more_than_once, d.extra_processings),
            (0, 0),
            "{}: {d:?}",
            t.transport
        );
        assert_eq!(d.answered_from_store, d.duplicates, "{}: {d:?}", t.transport);
        // Every request was processed exactly once: each one answered is
        // effectively once.
        assert_eq!(d.effectively_once, d.answered, "{}: {d:?}", t.transport);
    }
}
