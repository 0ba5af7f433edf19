//! What the link really delivers: N sequenced, timestamped UDP datagrams
//! each way, and what arrived — loss, duplicates, reordering (RFC 4737:
//! a packet is reordered when one with a higher number arrived before it)
//! and one-way delay (both ends read the same CLOCK_MONOTONIC).

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use transbench_analysis::seq::{self, Arrival};
use transbench_reports::DeliveredImpairment;
use transbench_wire::clock::mono_now_ns;

use crate::{NetNs, TestbedError};

/// The sequence metrics of `arrivals`, and the one-way delay of the first
/// copy of each datagram.
fn summarise(sent: u64, wait: Duration, arrivals: &[Arrival]) -> DeliveredImpairment {
    let m = seq::analyse(sent, wait.as_nanos() as u64, arrivals);
    let mut seen = vec![false; sent as usize];
    let mut delays: Vec<u64> = arrivals
        .iter()
        .filter(|a| a.seq < sent && !std::mem::replace(&mut seen[a.seq as usize], true))
        .map(|a| a.received_ns.saturating_sub(a.sent_ns))
        .collect();
    delays.sort_unstable();
    DeliveredImpairment {
        sent,
        received: m.received,
        loss_ratio: m.loss_ratio,
        // Per distinct packet received, as a link's duplication rate reads.
        dup_ratio: if m.received == 0 {
            0.0
        } else {
            m.dup_ratio * sent as f64 / m.received as f64
        },
        reorder_ratio: m.reorder_ratio,
        early_ratio: m.early_ratio,
        delay_min_ns: delays.first().copied().unwrap_or(0),
        delay_p50_ns: delays.get(delays.len() / 2).copied().unwrap_or(0),
        delay_mean_ns: if delays.is_empty() {
            0
        } else {
            (delays.iter().map(|&d| d as u128).sum::<u128>() / delays.len() as u128) as u64
        },
        delay_max_ns: delays.last().copied().unwrap_or(0),
    }
}

/// The port probes use on both sides of the link.
const PROBE_PORT: u16 = 9;

/// Sends `count` datagrams from `from_ns` (`from`) to `to` in `to_ns`, one
/// every `interval`, and analyses what arrives until `wait` after the last
/// was sent.
pub fn probe(
    from_ns: &NetNs,
    from: Ipv4Addr,
    to_ns: &NetNs,
    to: Ipv4Addr,
    count: u64,
    interval: Duration,
    wait: Duration,
) -> Result<DeliveredImpairment, TestbedError> {
    let io = |what: &str| {
        let what = what.to_string();
        move |e| TestbedError::io(what.clone(), e)
    };
    // When to stop listening: known once the last datagram is sent.
    // Silence is not the end (a burst of loss, a slot gap); the deadline is.
    let deadline = AtomicU64::new(u64::MAX);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let deadline = &deadline;
        let receiver = s.spawn(move || -> Result<Vec<Arrival>, TestbedError> {
            to_ns.enter()?;
            let sock = UdpSocket::bind((to, PROBE_PORT)).map_err(io("binding the probe receiver"))?;
            sock.set_read_timeout(Some(Duration::from_millis(20)))
                .map_err(io("probe socket"))?;
            let _ = ready_tx.send(());
            let mut arrivals = Vec::new();
            let mut buf = [0u8; 64];
            while mono_now_ns() < deadline.load(Ordering::Acquire) {
                let Ok(n) = sock.recv(&mut buf) else { continue };
                let now = mono_now_ns();
                if n >= 16 {
                    arrivals.push(Arrival {
                        seq: u64::from_be_bytes(buf[..8].try_into().expect("8 bytes")),
                        sent_ns: u64::from_be_bytes(buf[8..16].try_into().expect("8 bytes")),
                        received_ns: now,
                    });
                }
            }
            Ok(arrivals)
        });
        let sent = s
            .spawn(move || -> Result<(), TestbedError> {
                from_ns.enter()?;
                let sock = UdpSocket::bind((from, 0)).map_err(io("binding the probe sender"))?;
                let _ = ready_rx.recv_timeout(Duration::from_secs(5));
                let start = mono_now_ns();
                for seq in 0..count {
                    let due = start + seq * interval.as_nanos() as u64;
                    let now = mono_now_ns();
                    if due > now {
                        std::thread::sleep(Duration::from_nanos(due - now));
                    }
                    let mut pkt = [0u8; 64];
                    pkt[..8].copy_from_slice(&seq.to_be_bytes());
                    pkt[8..16].copy_from_slice(&mono_now_ns().to_be_bytes());
                    sock.send_to(&pkt, (to, PROBE_PORT))
                        .map_err(io("sending a probe"))?;
                }
                Ok(())
            })
            .join()
            .expect("probe sender thread");
        deadline.store(mono_now_ns() + wait.as_nanos() as u64, Ordering::Release);
        sent?;
        let arrivals = receiver.join().expect("probe receiver thread")?;
        Ok(summarise(count, wait, &arrivals))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_come_from_first_copies_and_ratios_from_the_tracker() {
        let at = |seq: u64, delay: u64| Arrival {
            seq,
            sent_ns: seq * 1000,
            received_ns: seq * 1000 + delay,
        };
        // 2 lost; 1 duplicated (the late copy's delay is not counted).
        let d = summarise(
            4,
            Duration::from_secs(1),
            &[at(0, 10), at(1, 20), at(1, 900), at(3, 30)],
        );
        assert_eq!((d.sent, d.received), (4, 3));
        assert!((d.loss_ratio - 0.25).abs() < 1e-12);
        assert!((d.dup_ratio - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            (d.delay_min_ns, d.delay_p50_ns, d.delay_max_ns, d.delay_mean_ns),
            (10, 20, 30, 20)
        );
    }
}
