//! The UDP sequence tracker: what happened to each numbered datagram, not
//! iperf3-style gap counting (which cannot tell loss from reordering).

use std::collections::BTreeMap;

/// One datagram as received: its number, when it was sent and when it
/// arrived (ns, one clock on one host; or RTT-based on two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub seq: u64,
    pub sent_ns: u64,
    pub received_ns: u64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeqMetrics {
    pub sent: u64,
    /// Distinct datagrams that arrived within the wait.
    pub received: u64,
    /// RFC 7680: not arrived within `wait` of being sent, over sent.
    pub loss_ratio: f64,
    /// Extra copies over sent.
    pub dup_ratio: f64,
    /// RFC 4737: arrived with a number below the next expected, over received.
    pub reorder_ratio: f64,
    /// Arrived ahead of a lower-numbered datagram, over received: what
    /// netem's `reorder` sets (one early datagram makes several reordered
    /// ones in RFC 4737's sense).
    pub early_ratio: f64,
    /// RFC 4737 reordering extent of each reordered datagram: how many
    /// arrivals earlier the first datagram it should have preceded came.
    pub reorder_extents: Vec<u64>,
    /// RFC 3357: length of each run of consecutive lost numbers -> count.
    pub loss_bursts: BTreeMap<u64, u64>,
    /// RFC 3550 interarrival jitter at the end, ns.
    pub jitter_rfc3550_ns: f64,
    /// RFC 3393 IPDV of consecutive numbers both received, ns (signed).
    pub ipdv_ns: Vec<i64>,
}

/// For distinct numbers in arrival order: whether each arrived early, ahead
/// of a lower number that arrives after it (what netem's `reorder` does).
pub fn early_flags(order: &[u64]) -> Vec<bool> {
    let mut early = vec![false; order.len()];
    let mut lowest_after = u64::MAX;
    for (i, &seq) in order.iter().enumerate().rev() {
        early[i] = lowest_after < seq;
        lowest_after = lowest_after.min(seq);
    }
    early
}

/// Analyses `arrivals` (in arrival order) of datagrams numbered `0..sent`.
/// Arrivals later than `wait_ns` after their send time count as lost.
pub fn analyse(sent: u64, wait_ns: u64, arrivals: &[Arrival]) -> SeqMetrics {
    let mut seen = vec![false; sent as usize];
    let mut one_way = vec![None::<(u64, u64)>; sent as usize];
    let mut m = SeqMetrics {
        sent,
        ..Default::default()
    };
    let mut dups = 0u64;
    let mut next_expected = 0u64;
    let mut reordered = 0u64;
    // Arrival position and the running maximum number, for extents.
    let mut arrival_max: Vec<u64> = Vec::new();
    let mut jitter = 0f64;
    let mut previous: Option<Arrival> = None;
    let mut order = Vec::with_capacity(arrivals.len());
    for a in arrivals.iter().filter(|a| a.seq < sent) {
        if a.received_ns.saturating_sub(a.sent_ns) > wait_ns {
            continue;
        }
        if std::mem::replace(&mut seen[a.seq as usize], true) {
            dups += 1;
            continue;
        }
        m.received += 1;
        order.push(a.seq);
        one_way[a.seq as usize] = Some((a.sent_ns, a.received_ns));
        if a.seq >= next_expected {
            next_expected = a.seq + 1;
        } else {
            reordered += 1;
            // The earliest arrival with a higher number: the running
            // maximum is non-decreasing, so a binary search finds it.
            let first_higher = arrival_max.partition_point(|&max| max <= a.seq);
            m.reorder_extents.push((arrival_max.len() - first_higher) as u64);
        }
        let max_so_far = arrival_max.last().copied().unwrap_or(0).max(a.seq);
        arrival_max.push(max_so_far);
        if let Some(p) = previous {
            let d = (a.received_ns as i128 - p.received_ns as i128) - (a.sent_ns as i128 - p.sent_ns as i128);
            jitter += (d.unsigned_abs() as f64 - jitter) / 16.0;
        }
        previous = Some(*a);
    }
    let ratio = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    m.loss_ratio = ratio(sent - m.received, sent);
    m.dup_ratio = ratio(dups, sent);
    m.reorder_ratio = ratio(reordered, m.received);
    let early = early_flags(&order).iter().filter(|&&e| e).count() as u64;
    m.early_ratio = ratio(early, m.received);
    m.jitter_rfc3550_ns = jitter;
    let mut burst = 0u64;
    for received in seen.iter().chain(std::iter::once(&true)) {
        if *received {
            if burst > 0 {
                *m.loss_bursts.entry(burst).or_default() += 1;
            }
            burst = 0;
        } else {
            burst += 1;
        }
    }
    for pair in one_way.windows(2) {
        if let [Some((s0, r0)), Some((s1, r1))] = pair {
            m.ipdv_ns
                .push((*r1 as i64 - *s1 as i64) - (*r0 as i64 - *s0 as i64));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Datagram i sent at i ms, arriving `delay(i)` later, in the given order.
    fn arrivals(order: &[u64], delay: impl Fn(u64) -> u64) -> Vec<Arrival> {
        order
            .iter()
            .map(|&seq| Arrival {
                seq,
                sent_ns: seq * MS,
                received_ns: seq * MS + delay(seq),
            })
            .collect()
    }

    #[test]
    fn a_clean_constant_path_has_no_loss_no_jitter_no_ipdv() {
        let m = analyse(
            100,
            1000 * MS,
            &arrivals(&(0..100).collect::<Vec<_>>(), |_| 5 * MS),
        );
        assert_eq!(
            (m.received, m.loss_ratio, m.dup_ratio, m.reorder_ratio),
            (100, 0.0, 0.0, 0.0)
        );
        assert_eq!(m.jitter_rfc3550_ns, 0.0);
        assert!(m.ipdv_ns.iter().all(|&d| d == 0) && m.ipdv_ns.len() == 99);
        assert!(m.loss_bursts.is_empty());
    }

    #[test]
    fn rfc4737_examples() {
        // RFC 4737 §4.2: arrival order 1,2,4,5,3 (0-based here: 0,1,3,4,2):
        // only 2 is reordered, with extent 2 (it should have come before
        // 3, which arrived two positions earlier).
        let m = analyse(5, 1000 * MS, &arrivals(&[0, 1, 3, 4, 2], |_| MS));
        assert_eq!(m.reorder_ratio, 1.0 / 5.0);
        assert_eq!(m.reorder_extents, vec![2]);
        // One early datagram (4 before 1..3): three reordered, extents 1,2,3.
        let m = analyse(5, 1000 * MS, &arrivals(&[0, 4, 1, 2, 3], |_| MS));
        assert_eq!(m.reorder_ratio, 3.0 / 5.0);
        assert_eq!(m.reorder_extents, vec![1, 2, 3]);
        assert_eq!(
            m.early_ratio,
            1.0 / 5.0,
            "netem would call it one reordered packet"
        );
    }

    #[test]
    fn loss_bursts_duplicates_and_the_wait() {
        // Lost: 2, 5, 6, 7 (bursts of 1 and 3); 9 arrives after the wait;
        // 3 is duplicated.
        let order = [0, 1, 3, 3, 4, 8, 9];
        let m = analyse(
            10,
            50 * MS,
            &arrivals(&order, |s| if s == 9 { 60 * MS } else { MS }),
        );
        assert_eq!(m.received, 5);
        assert!((m.loss_ratio - 0.5).abs() < 1e-12);
        assert!((m.dup_ratio - 0.1).abs() < 1e-12);
        assert_eq!(
            m.loss_bursts,
            BTreeMap::from([(1, 2), (3, 1)]),
            "2 and the late 9; 5-7"
        );
    }

    #[test]
    fn jitter_follows_rfc3550s_running_estimate() {
        // Delays alternate 1 ms and 3 ms: every |D| is 2 ms, and J converges
        // to it as J += (|D| - J)/16.
        let m = analyse(
            400,
            1000 * MS,
            &arrivals(&(0..400).collect::<Vec<_>>(), |s| {
                if s % 2 == 0 {
                    MS
                } else {
                    3 * MS
                }
            }),
        );
        assert!(
            (m.jitter_rfc3550_ns - 2e6).abs() < 1e3,
            "J = {}",
            m.jitter_rfc3550_ns
        );
        assert!(m.ipdv_ns.iter().all(|&d| d.abs() == 2 * MS as i64));
    }
}
