//! `quic-dgram`, QUIC DATAGRAM frames through quinn, end to end: on
//! loopback without root every datagram is accounted for at both ends, and
//! across linkemu with loss (root) the messages lost agree with the loss the
//! link probe measured, within binomial bounds.

mod common;

use common::*;
use transbench_reports::{RunResults, TrialResult};
use transbench_wire::DatagramCounts;

fn datagrams(t: &TrialResult) -> (DatagramCounts, DatagramCounts) {
    let sender = t
        .quic_datagrams
        .unwrap_or_else(|| panic!("{}: no sender datagram counts", t.id));
    let receiver = t
        .receiver
        .quic_datagrams
        .unwrap_or_else(|| panic!("{}: no receiver datagram counts", t.id));
    (sender, receiver)
}

fn run(workload: &str, args: &[&str]) -> RunResults {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec!["--transport", "quic-dgram", "--duration", "1s"];
    all.extend_from_slice(args);
    run_workload(workload, "300ms", &all, dir.path())
}

#[test]
fn every_datagram_is_accounted_for_at_both_ends_on_loopback() {
    let _serial = serial();
    retried("quic-dgram on loopback", || {
        let rr = run("rr", &["--rate", "500"]);
        let multi = run("multistream", &["--streams", "4", "--rate", "100"]);
        let stream = run("stream", &["--bitrate", "20M"]);
        for (r, answered) in [(&rr, true), (&multi, false), (&stream, false)] {
            let t = &r.trials[0];
            assert_eq!(t.transport.name(), "quic-dgram");
            undisturbed([t])?;
            let (s, rcv) = datagrams(t);
            // Nothing refused or dropped at these rates: what was offered
            // went out, arrived and was read.
            assert_eq!((s.too_large, s.dropped_sending()), (0, 0), "{}: {s:?}", t.id);
            assert_eq!(
                rcv.received, s.sent,
                "{}: loopback loses nothing: {s:?} {rcv:?}",
                t.id
            );
            assert_eq!(rcv.read, rcv.received, "{}: {rcv:?}", t.id);
            // Warm-up included: at least the measured messages.
            assert!(s.offered >= t.counters.sent, "{}: {s:?}", t.id);
            assert_eq!(t.counters.lost, 0, "{}", t.id);
            if answered {
                // Every request answered with a datagram of its own.
                assert_eq!(
                    (rcv.offered, s.received, s.read),
                    (rcv.read, rcv.read, rcv.read),
                    "{}",
                    t.id
                );
            } else {
                assert_eq!((rcv.offered, s.received), (0, 0), "{}: one way", t.id);
            }
            // Datagrams are never resent: the sequence tracker's view.
            let udp = t
                .udp
                .as_ref()
                .unwrap_or_else(|| panic!("{}: no sequence metrics", t.id));
            assert_eq!(udp.loss_ratio, 0.0, "{}", t.id);
        }
        Ok(())
    });
}

#[test]
fn messages_lost_agree_with_the_links_loss() {
    if !have_root() {
        return;
    }
    let _serial = serial();
    // |a - b| within 4 sigma of the pooled ratio over both samples.
    fn agree(lost: u64, n: u64, probe_lost: u64, probe_n: u64) -> Result<(), String> {
        let (a, b) = (lost as f64 / n as f64, probe_lost as f64 / probe_n as f64);
        let p = (lost + probe_lost) as f64 / (n + probe_n) as f64;
        let bound = 4.0 * (p * (1.0 - p) * (1.0 / n as f64 + 1.0 / probe_n as f64)).sqrt();
        if (a - b).abs() <= bound {
            Ok(())
        } else {
            Err(format!(
                "{lost} of {n} lost against the probe's {probe_lost} of {probe_n} (bound {bound:.4})"
            ))
        }
    }
    retried("quic-dgram across a lossy link", || {
        let profile = ["--impair", "delay 5ms loss 5%"];
        let rr = run("rr", &[&profile[..], &["--rate", "400"]].concat());
        let multi = run(
            "multistream",
            &[&profile[..], &["--streams", "4", "--rate", "100"]].concat(),
        );
        for (r, both_ways) in [(&rr, true), (&multi, false)] {
            // Multistream's no-loss baseline trial comes first.
            let t = r
                .trials
                .iter()
                .find(|t| !t.baseline)
                .expect("a trial across the link");
            undisturbed([t])?;
            let link = r.delivered_impairment.as_ref().expect("the link was probed");
            let (fwd, rev) = (&link.forward.measured, &link.reverse.measured);
            let lost = |d: &transbench_reports::DeliveredImpairment| d.sent - d.received;
            // A request and its answer each cross one lossy direction.
            let (probe_lost, probe_n) = if both_ways {
                // Survives both: (1 - p_f)(1 - p_r), from the two probes.
                let survive =
                    (fwd.received as f64 / fwd.sent as f64) * (rev.received as f64 / rev.sent as f64);
                (((1.0 - survive) * fwd.sent as f64).round() as u64, fwd.sent)
            } else {
                (lost(fwd), fwd.sent)
            };
            agree(t.counters.lost, t.counters.sent, probe_lost, probe_n)
                .map_err(|e| format!("{}: {e}", t.id))?;
            // quinn sent every datagram it was given, so the path lost them.
            let (s, rcv) = datagrams(t);
            assert_eq!((s.too_large, s.dropped_sending()), (0, 0), "{}: {s:?}", t.id);
            assert!(
                rcv.received < s.sent,
                "{}: the link lost none: {s:?} {rcv:?}",
                t.id
            );
        }
        Ok(())
    });
}
