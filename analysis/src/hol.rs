//! Head-of-line blocking, measured directly from per-message timelines.
//!
//! For each message, the excess X = latency - base, where base is the 1st
//! percentile latency of the same transport with no loss. A message is late
//! if X > max(2 ms, RTT/8). In send order, a maximal run of late messages
//! is a stall episode; its index message is the one that waited longest
//! (in a HOL stall: the lost one, the others queued behind it), and late
//! messages of the episode on other streams are collateral — delayed only
//! because they shared a connection with the index message's stream.

/// One message of a multistream trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    pub stream: u32,
    pub seq: u64,
    pub intended_ns: u64,
    /// When it reached the application; `None` if it never did.
    pub delivered_ns: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct HolAnalysis {
    pub messages: u64,
    /// Late or never delivered, over all messages.
    pub late_frac: f64,
    pub episodes: u64,
    /// Distinct streams with late messages, per episode.
    pub fanouts: Vec<u32>,
    /// Collateral messages over all messages.
    pub hol_frac: f64,
    /// Excess delay of each collateral message, ns.
    pub hol_delays_ns: Vec<u64>,
    /// Pairs on different streams delivered in the reverse of their send
    /// order (always 0 over one ordered byte stream).
    pub overtakes: u64,
    /// Episodes whose excess rises again after falling: more than one
    /// stall (loss) inside one episode, so fan-out over-counts.
    pub ambiguous_episodes: u64,
}

/// What a message must exceed to be late.
pub fn late_threshold_ns(rtt_ns: u64) -> u64 {
    (rtt_ns / 8).max(2_000_000)
}

/// A rise of this much within an episode marks a second stall.
const SECOND_STALL_RISE_NS: u64 = 1_000_000;

pub fn analyse(messages: &[Message], base_ns: u64, rtt_ns: u64) -> HolAnalysis {
    let threshold = late_threshold_ns(rtt_ns);
    let mut by_send: Vec<&Message> = messages.iter().collect();
    by_send.sort_by_key(|m| (m.intended_ns, m.stream, m.seq));
    // Excess per message; undelivered messages are late by definition.
    let excess: Vec<Option<u64>> = by_send
        .iter()
        .map(|m| {
            m.delivered_ns
                .map(|d| d.saturating_sub(m.intended_ns).saturating_sub(base_ns))
        })
        .collect();
    let is_late = |i: usize| excess[i].is_none_or(|x| x > threshold);

    let mut a = HolAnalysis {
        messages: messages.len() as u64,
        ..Default::default()
    };
    let mut late = 0u64;
    let mut collateral = 0u64;
    let mut i = 0;
    while i < by_send.len() {
        if !is_late(i) {
            i += 1;
            continue;
        }
        let start = i;
        while i < by_send.len() && is_late(i) {
            i += 1;
        }
        let episode = start..i;
        late += episode.len() as u64;
        a.episodes += 1;
        // The index message waited longest (never delivered counts as longest).
        let index = episode
            .clone()
            .max_by_key(|&j| excess[j].unwrap_or(u64::MAX))
            .expect("episodes are not empty");
        let index_stream = by_send[index].stream;
        let mut streams: Vec<u32> = episode.clone().map(|j| by_send[j].stream).collect();
        streams.sort_unstable();
        streams.dedup();
        a.fanouts.push(streams.len() as u32);
        for j in episode.clone() {
            if by_send[j].stream != index_stream {
                collateral += 1;
                if let Some(x) = excess[j] {
                    a.hol_delays_ns.push(x);
                }
            }
        }
        let mut low = u64::MAX;
        let mut rises = false;
        for j in episode {
            let x = excess[j].unwrap_or(u64::MAX);
            if x > low.saturating_add(SECOND_STALL_RISE_NS) {
                rises = true;
            }
            low = low.min(x);
        }
        a.ambiguous_episodes += rises as u64;
    }
    let frac = |n: u64| {
        if messages.is_empty() {
            0.0
        } else {
            n as f64 / messages.len() as f64
        }
    };
    a.late_frac = frac(late);
    a.hol_frac = frac(collateral);
    a.overtakes = cross_stream_overtakes(&by_send);
    a
}

/// Delivered pairs in reverse send order, minus those within a stream.
fn cross_stream_overtakes(by_send: &[&Message]) -> u64 {
    let delivered: Vec<u64> = by_send.iter().filter_map(|m| m.delivered_ns).collect();
    let mut streams: std::collections::BTreeMap<u32, Vec<u64>> = Default::default();
    for m in by_send {
        if let Some(d) = m.delivered_ns {
            streams.entry(m.stream).or_default().push(d);
        }
    }
    let within: u64 = streams.into_values().map(|mut v| inversions(&mut v)).sum();
    inversions(&mut delivered.clone()) - within
}

/// Pairs i < j with v[i] > v[j] (merge sort; sorts `v`).
fn inversions(v: &mut [u64]) -> u64 {
    if v.len() < 2 {
        return 0;
    }
    let mid = v.len() / 2;
    let mut count = inversions(&mut v[..mid]) + inversions(&mut v[mid..]);
    let mut merged = Vec::with_capacity(v.len());
    let (mut i, mut j) = (0, mid);
    while i < mid && j < v.len() {
        if v[i] <= v[j] {
            merged.push(v[i]);
            i += 1;
        } else {
            // Everything left in the first half is greater.
            count += (mid - i) as u64;
            merged.push(v[j]);
            j += 1;
        }
    }
    merged.extend_from_slice(&v[i..mid]);
    merged.extend_from_slice(&v[j..]);
    v.copy_from_slice(&merged);
    count
}

/// The sparse-loss expectation for a cell: loss probability `p` per
/// packet, `packet_rate` packets/s on the path, `recovery_ns` ~ RTT + loss
/// detection, `streams` N.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HolTheory {
    /// p L R: the expected late fraction over one ordered connection.
    pub late_frac_single_order: f64,
    /// p (L/N) R: with per-stream ordering (QUIC).
    pub late_frac_per_stream: f64,
    /// p L R (N-1)/N: collateral fraction over one ordered connection;
    /// about 0 with per-stream ordering.
    pub hol_frac_single_order: f64,
    /// The approximation holds while p L R is small (<= 0.1).
    pub valid: bool,
}

pub fn theory(p: f64, packet_rate: f64, recovery_ns: u64, streams: u32) -> HolTheory {
    let plr = p * packet_rate * recovery_ns as f64 / 1e9;
    let n = streams.max(1) as f64;
    HolTheory {
        late_frac_single_order: plr,
        late_frac_per_stream: plr / n,
        hol_frac_single_order: plr * (n - 1.0) / n,
        valid: plr <= 0.1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// 4 streams, one message each every 4 ms, round-robin (stream k sends
    /// at 4i + k ms), all delivered after `base` unless `stall` says.
    fn timeline(n: u64, base: u64, stall: impl Fn(u32, u64, u64) -> Option<u64>) -> Vec<Message> {
        let mut out = Vec::new();
        for i in 0..n {
            for k in 0..4u32 {
                let intended = (4 * i + k as u64) * MS;
                out.push(Message {
                    stream: k,
                    seq: i,
                    intended_ns: intended,
                    delivered_ns: stall(k, i, intended).or(Some(intended + base)),
                });
            }
        }
        out
    }

    #[test]
    fn no_loss_means_no_episodes() {
        let a = analyse(&timeline(50, 5 * MS, |_, _, _| None), 5 * MS, 10 * MS);
        assert_eq!(
            (a.episodes, a.late_frac, a.hol_frac, a.overtakes),
            (0, 0.0, 0.0, 0)
        );
    }

    #[test]
    fn a_tcp_like_stall_blocks_every_stream_behind_the_lost_message() {
        // Stream 1's message 10 (sent at 41 ms) is lost and retransmitted:
        // delivered at 41 + 5 + 20 = 66 ms; everything sent after it until
        // then is held and released at 66 ms (one ordered byte stream).
        let lost_at = 41 * MS;
        let release = lost_at + 25 * MS;
        let a = analyse(
            &timeline(50, 5 * MS, |_, _, t| {
                (t >= lost_at && t + 5 * MS < release).then_some(release)
            }),
            5 * MS,
            10 * MS,
        );
        assert_eq!(a.episodes, 1);
        // Held: sent at 41..=60 ms, excess > 2 ms for those sent before 59 ms.
        let late: Vec<u64> = (41..59).collect();
        assert_eq!(a.fanouts, vec![4]);
        assert_eq!(a.late_frac, late.len() as f64 / 200.0);
        // Collateral: the late ones not on stream 1 (41, 45, 49, 53, 57 are).
        let collateral = late.iter().filter(|&&t| t % 4 != 1).count();
        assert_eq!(a.hol_frac, collateral as f64 / 200.0);
        assert_eq!(a.hol_delays_ns.len(), collateral);
        assert_eq!(a.overtakes, 0, "one ordered stream: nothing overtakes");
        assert_eq!(a.ambiguous_episodes, 0);
    }

    #[test]
    fn a_quic_like_stall_delays_only_its_own_stream() {
        // Only stream 1 waits for the retransmission; the others flow.
        let lost_at = 41 * MS;
        let release = lost_at + 25 * MS;
        let a = analyse(
            &timeline(50, 5 * MS, |k, _, t| {
                (k == 1 && t >= lost_at && t + 5 * MS < release).then_some(release)
            }),
            5 * MS,
            10 * MS,
        );
        // Stream 1's messages at 41, 45, ..., 57 are late; in send order the
        // on-time messages of other streams split them into episodes of one.
        assert!(a.fanouts.iter().all(|&f| f == 1), "{:?}", a.fanouts);
        assert_eq!(a.hol_frac, 0.0);
        assert!(a.overtakes > 0, "other streams' later messages arrive first");
    }

    #[test]
    fn two_stalls_in_one_run_are_flagged_ambiguous() {
        let a = analyse(
            &timeline(50, 5 * MS, |_, _, t| match t / MS {
                41..=50 => Some(60 * MS),
                51..=60 => Some(80 * MS),
                _ => None,
            }),
            5 * MS,
            10 * MS,
        );
        assert_eq!(a.episodes, 1);
        assert_eq!(a.ambiguous_episodes, 1);
    }

    #[test]
    fn undelivered_messages_are_late() {
        let a = analyse(
            &timeline(10, MS, |k, i, _| (k == 0 && i == 3).then_some(u64::MAX)),
            MS,
            MS,
        );
        // Delivered at u64::MAX is absurdly late, and so is never.
        assert_eq!(a.episodes, 1);
        let b = analyse(
            &timeline(10, MS, |_, _, _| None)
                .into_iter()
                .map(|mut m| {
                    if m.stream == 0 && m.seq == 3 {
                        m.delivered_ns = None;
                    }
                    m
                })
                .collect::<Vec<_>>(),
            MS,
            MS,
        );
        assert_eq!((b.episodes, b.late_frac), (1, 1.0 / 40.0));
    }

    #[test]
    fn inversions_count_reverse_pairs() {
        assert_eq!(inversions(&mut [1, 2, 3]), 0);
        assert_eq!(inversions(&mut [3, 2, 1]), 3);
        assert_eq!(inversions(&mut [2, 4, 1, 3, 5]), 3);
    }

    #[test]
    fn theory_scales_with_streams_and_knows_its_limits() {
        // 2 % loss, 200 packets/s, 30 ms recovery, 4 streams: pLR = 0.12.
        let t = theory(0.02, 200.0, 30 * MS, 4);
        assert!((t.late_frac_single_order - 0.12).abs() < 1e-12);
        assert!((t.late_frac_per_stream - 0.03).abs() < 1e-12);
        assert!((t.hol_frac_single_order - 0.09).abs() < 1e-12);
        assert!(!t.valid, "pLR 0.12 is past the sparse-loss regime");
        assert!(theory(0.02, 100.0, 30 * MS, 4).valid);
    }
}
