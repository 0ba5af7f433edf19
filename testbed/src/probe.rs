//! What the link really delivers: N sequenced, timestamped UDP datagrams
//! each way, and what arrived — loss, duplicates, reordering (RFC 4737:
//! a packet is reordered when one with a higher number arrived before it)
//! and one-way delay (both ends read the same CLOCK_MONOTONIC).

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{NetNs, TestbedError};

/// Per-packet facts, pure: what the analysis needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub seq: u64,
    pub one_way_ns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DeliveredImpairment {
    pub sent: u64,
    /// Distinct packets that arrived.
    pub received: u64,
    pub loss_ratio: f64,
    /// Extra copies over distinct packets received.
    pub dup_ratio: f64,
    /// Distinct packets that arrived after a higher-numbered one (RFC 4737).
    pub reorder_ratio: f64,
    /// Distinct packets that arrived ahead of a lower-numbered one: what
    /// netem's `reorder` sets (one early packet makes several "reordered"
    /// in RFC 4737's sense).
    pub early_ratio: f64,
    pub delay_min_ns: u64,
    pub delay_p50_ns: u64,
    pub delay_mean_ns: u64,
    pub delay_max_ns: u64,
}

/// Analyses arrivals (in arrival order) of `sent` packets numbered 0..sent.
pub fn analyse(sent: u64, arrivals: &[Arrival]) -> DeliveredImpairment {
    let mut seen = vec![false; sent as usize];
    let (mut distinct, mut dups, mut reordered) = (0u64, 0u64, 0u64);
    let mut highest: Option<u64> = None;
    let mut delays = Vec::with_capacity(arrivals.len());
    let mut order = Vec::with_capacity(arrivals.len());
    for a in arrivals.iter().filter(|a| a.seq < sent) {
        if std::mem::replace(&mut seen[a.seq as usize], true) {
            dups += 1;
            continue;
        }
        distinct += 1;
        order.push(a.seq);
        delays.push(a.one_way_ns);
        match highest {
            Some(h) if a.seq < h => reordered += 1,
            _ => highest = Some(a.seq),
        }
    }
    // Early: some lower-numbered packet arrives after it.
    let mut lowest_after = u64::MAX;
    let mut early = 0u64;
    for &seq in order.iter().rev() {
        if lowest_after < seq {
            early += 1;
        }
        lowest_after = lowest_after.min(seq);
    }
    delays.sort_unstable();
    let ratio = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    DeliveredImpairment {
        sent,
        received: distinct,
        loss_ratio: ratio(sent - distinct, sent),
        dup_ratio: ratio(dups, distinct),
        reorder_ratio: ratio(reordered, distinct),
        early_ratio: ratio(early, distinct),
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

fn mono_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
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
                    let seq = u64::from_be_bytes(buf[..8].try_into().expect("8 bytes"));
                    let sent = u64::from_be_bytes(buf[8..16].try_into().expect("8 bytes"));
                    arrivals.push(Arrival {
                        seq,
                        one_way_ns: now.saturating_sub(sent),
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
        Ok(analyse(count, &arrivals))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrivals(seqs: &[u64]) -> Vec<Arrival> {
        seqs.iter()
            .map(|&seq| Arrival {
                seq,
                one_way_ns: 1000 + seq,
            })
            .collect()
    }

    #[test]
    fn a_clean_path_is_clean() {
        let d = analyse(5, &arrivals(&[0, 1, 2, 3, 4]));
        assert_eq!(
            (d.received, d.loss_ratio, d.dup_ratio, d.reorder_ratio),
            (5, 0.0, 0.0, 0.0)
        );
        assert_eq!(
            (d.delay_min_ns, d.delay_p50_ns, d.delay_max_ns),
            (1000, 1002, 1004)
        );
    }

    #[test]
    fn loss_duplicates_and_reordering_are_counted_apart() {
        // 2 lost, 3 duplicated, 1 late (arrives after 4): RFC 4737 counts
        // only 1 as reordered, not 4 or 5 after it.
        let d = analyse(6, &arrivals(&[0, 3, 3, 4, 1, 5]));
        assert_eq!(d.received, 5);
        assert!((d.loss_ratio - 1.0 / 6.0).abs() < 1e-12);
        assert!((d.dup_ratio - 1.0 / 5.0).abs() < 1e-12);
        assert!((d.reorder_ratio - 1.0 / 5.0).abs() < 1e-12);
        // 3 and 4 went ahead of 1.
        assert!((d.early_ratio - 2.0 / 5.0).abs() < 1e-12);
    }

    #[test]
    fn one_early_packet_is_many_reordered_ones() {
        // Packet 5 overtakes 1-4: RFC 4737 counts 4 reordered, netem 1 early.
        let d = analyse(6, &arrivals(&[0, 5, 1, 2, 3, 4]));
        assert!((d.reorder_ratio - 4.0 / 6.0).abs() < 1e-12);
        assert!((d.early_ratio - 1.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn nothing_arrived_is_total_loss_not_a_panic() {
        let d = analyse(10, &[]);
        assert_eq!((d.received, d.loss_ratio, d.delay_p50_ns), (0, 1.0, 0));
    }
}
