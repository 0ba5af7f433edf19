//! One-way workloads, analysed: the sender's schedule matched against the
//! receiver's delivery records, then latency, head-of-line blocking and the
//! UDP sequence metrics in the results' terms. Pure: no clock, no I/O.

use hdrhistogram::Histogram;
use std::collections::HashMap;
use transbench_analysis::{hol, seq};
use transbench_reports::{
    new_histogram, Counters, Fanout, HistError, HolExpectation, HolMetrics, LatencySummary, OntimeRatio,
    UdpMetrics, MAX_TIMELINE,
};
use transbench_wire::delivery::Delivery;
use transbench_wire::{Streams, Transport};

use transbench_reports::record;

/// One message as scheduled by the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub stream: u32,
    pub seq: u64,
    pub intended_ns: u64,
    pub measured: bool,
}

/// The measured messages with their first delivery, and the tallies.
pub struct Matched {
    /// Measured messages in send order; `delivered_ns` is `None` if the
    /// message did not arrive within the wait.
    pub messages: Vec<hol::Message>,
    pub counters: Counters,
    /// One-way latency; lost messages at the wait.
    pub lat: Histogram<u64>,
    /// Per stream, its measured messages and every arrival of one
    /// (duplicates too), numbered from the stream's first measured message:
    /// input for the UDP sequence tracker.
    pub flows: Vec<(u64, Vec<seq::Arrival>)>,
}

/// Matches `deliveries` (in delivery order) to `sent`. A message delivered
/// more than `wait_ns` after its intended time is lost (and counted late).
pub fn match_deliveries(streams: u32, sent: &[Sent], deliveries: &[Delivery], wait_ns: u64) -> Matched {
    let index: HashMap<(u32, u64), usize> = sent
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.stream, s.seq), i))
        .collect();
    let first_measured: Vec<u64> = (0..streams)
        .map(|st| {
            sent.iter()
                .find(|s| s.stream == st && s.measured)
                .map_or(u64::MAX, |s| s.seq)
        })
        .collect();
    let mut delivered: Vec<Option<u64>> = vec![None; sent.len()];
    let mut counters = Counters::default();
    let mut arrivals = vec![Vec::new(); streams as usize];
    for d in deliveries {
        let Some(&i) = index.get(&(d.stream, d.seq)) else {
            counters.duplicates += 1;
            continue;
        };
        let s = sent[i];
        if s.measured {
            arrivals[s.stream as usize].push(seq::Arrival {
                seq: s.seq - first_measured[s.stream as usize],
                sent_ns: s.intended_ns,
                received_ns: d.delivered_ns,
            });
        }
        if delivered[i].is_some() {
            if s.measured {
                counters.duplicates += 1;
            }
            continue;
        }
        // Remembered even when late, so a later copy counts as a duplicate.
        delivered[i] = Some(d.delivered_ns);
    }
    let mut lat = new_histogram();
    let mut messages = Vec::new();
    let mut sent_per_stream = vec![0u64; streams as usize];
    for (s, d) in sent.iter().zip(&delivered) {
        if !s.measured {
            continue;
        }
        sent_per_stream[s.stream as usize] += 1;
        counters.sent += 1;
        let in_time = d.filter(|&t| t.saturating_sub(s.intended_ns) <= wait_ns);
        match (d, in_time) {
            (_, Some(t)) => {
                counters.received += 1;
                record(&mut lat, t.saturating_sub(s.intended_ns));
            }
            (Some(_), None) => {
                counters.lost += 1;
                counters.late += 1;
                record(&mut lat, wait_ns);
            }
            (None, None) => {
                counters.lost += 1;
                record(&mut lat, wait_ns);
            }
        }
        messages.push(hol::Message {
            stream: s.stream,
            seq: s.seq,
            intended_ns: s.intended_ns,
            delivered_ns: in_time,
        });
    }
    Matched {
        messages,
        counters,
        lat,
        flows: sent_per_stream.into_iter().zip(arrivals).collect(),
    }
}

/// What the head-of-line analysis is measured against.
#[derive(Debug, Clone)]
pub struct HolReference {
    pub base_ns: u64,
    pub base_source: String,
    pub rtt_ns: u64,
    pub rtt_source: String,
}

/// Deadlines for `ontime_ratio`, in base RTTs.
pub const ONTIME_RTTS: [f64; 3] = [1.0, 2.0, 4.0];

pub fn hol_metrics(
    messages: &[hol::Message],
    streams: u32,
    reference: &HolReference,
    theory: HolExpectation,
) -> Result<HolMetrics, HistError> {
    let a = hol::analyse(messages, reference.base_ns, reference.rtt_ns);
    let mut delays = new_histogram();
    for &x in &a.hol_delays_ns {
        record(&mut delays, x);
    }
    let ontime_ratio = ONTIME_RTTS
        .iter()
        .map(|&rtts| {
            let deadline_ns = (reference.rtt_ns as f64 * rtts) as u64;
            let on_time = messages
                .iter()
                .filter(|m| {
                    m.delivered_ns
                        .is_some_and(|d| d.saturating_sub(m.intended_ns) <= deadline_ns)
                })
                .count();
            OntimeRatio {
                rtts,
                deadline_ns,
                ratio: ratio(on_time as u64, messages.len() as u64),
            }
        })
        .collect();
    Ok(HolMetrics {
        streams,
        base_ns: reference.base_ns,
        base_source: reference.base_source.clone(),
        rtt_ns: reference.rtt_ns,
        rtt_source: reference.rtt_source.clone(),
        late_threshold_ns: hol::late_threshold_ns(reference.rtt_ns),
        late_frac: a.late_frac,
        episodes: a.episodes,
        hol_fanout: fanout(&a.fanouts),
        hol_frac: a.hol_frac,
        hol_delay: LatencySummary::from_histogram(&delays)?,
        overtakes: a.overtakes,
        ambiguous_episodes: a.ambiguous_episodes,
        ontime_ratio,
        theory,
        backlog: false,
        timeline: (messages.len() <= MAX_TIMELINE).then(|| timeline(messages)),
    })
}

/// The messages as the schema's `hol.timeline` records.
fn timeline(messages: &[hol::Message]) -> String {
    use base64::Engine;
    let t0 = messages.first().map_or(0, |m| m.intended_ns);
    let us = |ns: u64| (ns / 1000).min(u32::MAX as u64 - 1) as u32;
    let mut bytes = Vec::with_capacity(messages.len() * 12);
    for m in messages {
        bytes.extend_from_slice(&m.stream.to_be_bytes());
        bytes.extend_from_slice(&us(m.intended_ns - t0).to_be_bytes());
        let lat = m
            .delivered_ns
            .map_or(u32::MAX, |d| us(d.saturating_sub(m.intended_ns)));
        bytes.extend_from_slice(&lat.to_be_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

fn fanout(fanouts: &[u32]) -> Fanout {
    if fanouts.is_empty() {
        return Fanout::default();
    }
    let mut sorted = fanouts.to_vec();
    sorted.sort_unstable();
    let mid = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 {
        sorted[mid] as f64
    } else {
        (sorted[mid - 1] + sorted[mid]) as f64 / 2.0
    };
    let mut counts = std::collections::BTreeMap::new();
    for &f in fanouts {
        *counts.entry(f).or_default() += 1;
    }
    Fanout {
        median,
        mean: fanouts.iter().map(|&f| f as f64).sum::<f64>() / fanouts.len() as f64,
        max: *sorted.last().expect("not empty"),
        counts,
    }
}

/// Payload bytes per packet assumed for the packet rate: QUIC's smallest
/// maximum datagram, and below TCP's MSS on a 1500-byte path.
const PACKET_PAYLOAD: usize = 1200;

/// The sparse-loss expectation for a multistream cell. A lost packet holds
/// back what its ordering domain delivers for R = RTT + detection, where
/// detection ~ RTT/4 (RACK's reordering window for TCP; QUIC's time
/// threshold of 9/8 RTT is close): late_frac ~ p L R on one ordered
/// connection, ~ p (L/N) R with per-stream order; UDP never waits, so its
/// late messages are the lost ones.
pub fn expectation(
    transport: Transport,
    streams: u32,
    rate_per_stream: f64,
    size: usize,
    rtt_ns: u64,
    loss: Option<(f64, &str)>,
) -> HolExpectation {
    let (p, source) = loss.unwrap_or((0.0, "none"));
    let packets_per_message = size.div_ceil(PACKET_PAYLOAD).max(1) as f64;
    let packet_rate = streams as f64 * rate_per_stream * packets_per_message;
    let recovery_ns = rtt_ns + rtt_ns / 4;
    let t = hol::theory(p, packet_rate, recovery_ns, streams);
    let p_l_r = t.late_frac_single_order;
    let (late_frac, hol_frac) = match transport.capabilities().streams {
        // One order for every stream: a loss holds them all.
        Streams::Single | Streams::Multiplexed => (t.late_frac_single_order, t.hol_frac_single_order),
        Streams::ConnectionPerStream | Streams::Native => (t.late_frac_per_stream, 0.0),
        // A message is lost if any of its packets is.
        Streams::FlowPerStream => (1.0 - (1.0 - p).powf(packets_per_message), 0.0),
    };
    let valid = t.valid;
    HolExpectation {
        loss_p: p,
        loss_source: source.to_string(),
        packet_rate,
        recovery_ns,
        p_l_r,
        late_frac,
        hol_frac,
        valid,
        note: (!valid).then(|| {
            format!(
                "p L R = {p_l_r:.3} > 0.1: losses overlap within a recovery time, so the \
                 sparse-loss expectation is only a rough upper guide here"
            )
        }),
    }
}

/// The UDP sequence tracker over every flow (datagrams sent, and their
/// arrivals), merged: counts add up, ratios are over the totals, jitter is
/// the mean over flows.
pub fn udp_metrics(
    flows: &[(u64, Vec<seq::Arrival>)],
    wait_ns: u64,
    size: usize,
    measured_ns: u64,
) -> Result<UdpMetrics, HistError> {
    let mut sent = 0u64;
    let mut received = 0u64;
    let (mut dups, mut reordered, mut early) = (0f64, 0f64, 0f64);
    let mut reorder_extent = std::collections::BTreeMap::new();
    let mut loss_burst_len = std::collections::BTreeMap::new();
    let mut jitters = Vec::new();
    let mut ipdv = new_histogram();
    let (mut ipdv_n, mut ipdv_negative) = (0u64, 0u64);
    for (flow_sent, arrivals) in flows {
        if *flow_sent == 0 {
            continue;
        }
        let s = seq::analyse(*flow_sent, wait_ns, arrivals);
        sent += s.sent;
        received += s.received;
        dups += s.dup_ratio * s.sent as f64;
        reordered += s.reorder_ratio * s.received as f64;
        early += s.early_ratio * s.received as f64;
        for e in s.reorder_extents {
            *reorder_extent.entry(e).or_insert(0u64) += 1;
        }
        for (len, n) in s.loss_bursts {
            *loss_burst_len.entry(len).or_insert(0u64) += n;
        }
        jitters.push(s.jitter_rfc3550_ns);
        for d in s.ipdv_ns {
            ipdv_n += 1;
            ipdv_negative += (d < 0) as u64;
            record(&mut ipdv, d.unsigned_abs());
        }
    }
    let secs = measured_ns as f64 / 1e9;
    let bps = |n: u64| {
        if secs > 0.0 {
            (n * size as u64 * 8) as f64 / secs
        } else {
            0.0
        }
    };
    Ok(UdpMetrics {
        wait_ns,
        sent,
        received,
        loss_ratio: ratio(sent - received, sent),
        dup_ratio: if received == 0 {
            0.0
        } else {
            dups / received as f64
        },
        reorder_ratio: if received == 0 {
            0.0
        } else {
            reordered / received as f64
        },
        early_ratio: if received == 0 {
            0.0
        } else {
            early / received as f64
        },
        reorder_extent,
        loss_burst_len,
        jitter_rfc3550_ns: if jitters.is_empty() {
            0.0
        } else {
            jitters.iter().sum::<f64>() / jitters.len() as f64
        },
        ipdv: LatencySummary::from_histogram(&ipdv)?,
        ipdv_negative_frac: ratio(ipdv_negative, ipdv_n),
        goodput_bps: bps(received),
        offered_bps: bps(sent),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// 2 streams, 4 messages each, 1 ms apart, round robin; the first two
    /// are warm-up.
    fn schedule() -> Vec<Sent> {
        (0..8)
            .map(|j| Sent {
                stream: (j % 2) as u32,
                seq: j / 2,
                intended_ns: j * MS,
                measured: j >= 2,
            })
            .collect()
    }

    fn delivery(stream: u32, seq: u64, at: u64) -> Delivery {
        Delivery {
            stream,
            seq,
            delivered_ns: at,
        }
    }

    #[test]
    fn deliveries_are_matched_once_and_late_ones_are_lost() {
        let sent = schedule();
        let d = vec![
            delivery(0, 0, 5 * MS), // warm-up: not counted
            delivery(0, 1, 7 * MS),
            delivery(1, 1, 8 * MS),
            delivery(1, 1, 9 * MS),   // duplicate
            delivery(0, 2, 100 * MS), // past the 50 ms wait: lost, late
            delivery(9, 0, 9 * MS),   // never sent
            delivery(0, 3, 11 * MS),
        ];
        let m = match_deliveries(2, &sent, &d, 50 * MS);
        let c = &m.counters;
        assert_eq!(
            (c.sent, c.received, c.lost, c.late, c.duplicates),
            (6, 3, 3, 1, 2)
        );
        assert_eq!(m.lat.len(), 6);
        assert_eq!(m.messages.len(), 6);
        assert_eq!(m.messages[0].delivered_ns, Some(7 * MS));
        assert_eq!(m.messages[2].delivered_ns, None, "late is lost for HOL too");
        assert_eq!((m.flows[0].0, m.flows[1].0), (3, 3));
        // Stream 1's arrivals are renumbered from its first measured message.
        assert_eq!(m.flows[1].1.iter().map(|a| a.seq).collect::<Vec<_>>(), vec![0, 0]);
    }

    #[test]
    fn ontime_ratio_counts_lost_messages_as_misses() {
        let messages: Vec<hol::Message> = (0..10)
            .map(|i| hol::Message {
                stream: (i % 2) as u32,
                seq: i / 2,
                intended_ns: i * MS,
                // 0-4 take 5 ms, 5-8 take 15 ms, 9 is lost.
                delivered_ns: (i < 9).then(|| i * MS + if i < 5 { 5 * MS } else { 15 * MS }),
            })
            .collect();
        let reference = HolReference {
            base_ns: 5 * MS,
            base_source: "test".into(),
            rtt_ns: 10 * MS,
            rtt_source: "test".into(),
        };
        let theory = expectation(Transport::Quic, 2, 100.0, 1000, 10 * MS, None);
        let h = hol_metrics(&messages, 2, &reference, theory).unwrap();
        let ratios: Vec<f64> = h.ontime_ratio.iter().map(|o| o.ratio).collect();
        assert_eq!(ratios, vec![0.5, 0.9, 0.9]);
        // 5..9 are late (excess 10 ms > 2 ms): one episode over both streams.
        assert_eq!((h.episodes, h.hol_fanout.max), (1, 2));
        assert!((h.late_frac - 0.5).abs() < 1e-12);
    }

    #[test]
    fn expectation_follows_the_ordering_domain() {
        // 8 streams x 125 msg/s of 1 KiB: L = 1000 packets/s; RTT 20 ms:
        // R = 25 ms; p = 0.2 %: p L R = 0.05.
        let e = |t| expectation(t, 8, 125.0, 1024, 20 * MS, Some((0.002, "configured")));
        let mux = e(Transport::TcpMux);
        assert!((mux.p_l_r - 0.05).abs() < 1e-12 && mux.valid);
        assert!((mux.late_frac - 0.05).abs() < 1e-12);
        assert!((mux.hol_frac - 0.05 * 7.0 / 8.0).abs() < 1e-12);
        let quic = e(Transport::Quic);
        assert!((quic.late_frac - 0.05 / 8.0).abs() < 1e-12 && quic.hol_frac == 0.0);
        assert!((e(Transport::Udp).late_frac - 0.002).abs() < 1e-12);
        let dense = expectation(
            Transport::TcpMux,
            8,
            125.0,
            1024,
            20 * MS,
            Some((0.02, "configured")),
        );
        assert!(!dense.valid && dense.note.is_some());
    }

    #[test]
    fn udp_metrics_merge_flows() {
        let sent = schedule();
        // Stream 0: measured seqs 1..3 all arrive; stream 1: seq 2 lost.
        let d = vec![
            delivery(0, 1, 3 * MS),
            delivery(1, 1, 4 * MS),
            delivery(0, 2, 5 * MS),
            delivery(0, 3, 7 * MS),
            delivery(1, 3, 8 * MS),
        ];
        let m = match_deliveries(2, &sent, &d, 50 * MS);
        let u = udp_metrics(&m.flows, 50 * MS, 100, 1_000_000_000).unwrap();
        assert_eq!((u.sent, u.received), (6, 5));
        assert!((u.loss_ratio - 1.0 / 6.0).abs() < 1e-12);
        assert_eq!(u.loss_burst_len, std::collections::BTreeMap::from([(1, 1)]));
        assert!((u.goodput_bps - 4000.0).abs() < 1e-9);
    }
}

// Properties of delivery matching over arbitrary schedules and delivery
// records (missing, duplicated, late, early, never sent, in any order).
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::RngSeed;

    const MS: u64 = 1_000_000;
    const WAIT_NS: u64 = 50 * MS;

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 256,
            rng_seed: RngSeed::Fixed(0x006f_6e65_7761_7970),
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// A schedule: which stream sends next (per stream in seq order), 1 ms
    /// apart; each stream's first `warmup` messages are warm-up.
    fn schedule(streams: u32, order: &[u32], warmup: u64) -> Vec<Sent> {
        let mut next = vec![0u64; streams as usize];
        order
            .iter()
            .enumerate()
            .map(|(i, &stream)| {
                let seq = next[stream as usize];
                next[stream as usize] += 1;
                Sent {
                    stream,
                    seq,
                    intended_ns: i as u64 * MS,
                    measured: seq >= warmup,
                }
            })
            .collect()
    }

    /// Delivered this long after (or, as a receiver's clock behind the
    /// sender's may say, before) the intended time.
    fn offsets() -> impl Strategy<Value = Vec<i64>> {
        let offset = prop_oneof![
            8 => 0..=WAIT_NS as i64,
            2 => WAIT_NS as i64 + 1..=3 * WAIT_NS as i64,
            1 => -(MS as i64)..0,
        ];
        // Most messages once, some lost, some copied.
        let copies = prop_oneof![2 => Just(0usize), 6 => Just(1usize), 2 => 2usize..=3];
        (copies, proptest::array::uniform3(offset)).prop_map(|(k, o)| o[..k].to_vec())
    }

    #[derive(Debug, Clone)]
    struct Case {
        streams: u32,
        sent: Vec<Sent>,
        /// Per sent message, the offsets of its copies.
        copies: Vec<Vec<i64>>,
        deliveries: Vec<Delivery>,
        /// Records for messages never sent.
        unknown: u64,
    }

    fn cases() -> impl Strategy<Value = Case> {
        (1u32..=4, 0u64..=3)
            .prop_flat_map(|(streams, warmup)| {
                (
                    Just(streams),
                    proptest::collection::vec(0..streams, 0..=60),
                    Just(warmup),
                )
            })
            .prop_flat_map(|(streams, order, warmup)| {
                let sent = schedule(streams, &order, warmup);
                let n = sent.len();
                (
                    Just(streams),
                    Just(sent),
                    proptest::collection::vec(offsets(), n),
                    proptest::collection::vec((0..streams + 2, 1000u64..1010, 0..100 * MS), 0..=4),
                )
            })
            .prop_flat_map(|(streams, sent, copies, unknown)| {
                let mut deliveries: Vec<Delivery> = sent
                    .iter()
                    .zip(&copies)
                    .flat_map(|(s, offsets)| {
                        offsets.iter().map(move |&o| Delivery {
                            stream: s.stream,
                            seq: s.seq,
                            delivered_ns: s.intended_ns.saturating_add_signed(o),
                        })
                    })
                    .collect();
                deliveries.extend(unknown.iter().map(|&(stream, seq, at)| Delivery {
                    stream,
                    seq,
                    delivered_ns: at,
                }));
                let unknown = unknown.len() as u64;
                Just(deliveries).prop_shuffle().prop_map(move |deliveries| Case {
                    streams,
                    sent: sent.clone(),
                    copies: copies.clone(),
                    deliveries,
                    unknown,
                })
            })
    }

    proptest! {
        #![proptest_config(config())]

        // Every measured message matched once, to its first delivery, or
        // lost; received <= sent; duplicates as injected; latencies within
        // [0, wait]; each stream's arrivals numbered within its messages.
        #[test]
        fn every_message_is_matched_once_or_lost(case in cases()) {
            let m = match_deliveries(case.streams, &case.sent, &case.deliveries, WAIT_NS);
            let c = &m.counters;

            // The model: a message's first delivery in record order decides.
            let first = |s: &Sent| {
                case.deliveries
                    .iter()
                    .find(|d| (d.stream, d.seq) == (s.stream, s.seq))
                    .map(|d| d.delivered_ns)
            };
            let measured: Vec<(&Sent, &Vec<i64>)> =
                case.sent.iter().zip(&case.copies).filter(|(s, _)| s.measured).collect();
            let in_time = |s: &Sent| first(s).filter(|&t| t.saturating_sub(s.intended_ns) <= WAIT_NS);
            let received = measured.iter().filter(|(s, _)| in_time(s).is_some()).count() as u64;
            let late = measured
                .iter()
                .filter(|(s, _)| first(s).is_some() && in_time(s).is_none())
                .count() as u64;
            let extra: u64 = measured.iter().map(|(_, o)| (o.len() as u64).saturating_sub(1)).sum();

            prop_assert_eq!(c.sent, measured.len() as u64);
            prop_assert!(c.received <= c.sent);
            prop_assert_eq!(c.received, received);
            prop_assert_eq!(c.sent, c.received + c.lost);
            prop_assert_eq!(c.late, late);
            prop_assert_eq!(
                c.duplicates,
                extra + case.unknown,
                "copies beyond the first and records of nothing sent"
            );

            // One entry per measured message, in send order, with its first
            // delivery if that came within the wait.
            prop_assert_eq!(m.messages.len(), measured.len());
            for (msg, (s, _)) in m.messages.iter().zip(&measured) {
                prop_assert_eq!((msg.stream, msg.seq, msg.intended_ns), (s.stream, s.seq, s.intended_ns));
                prop_assert_eq!(msg.delivered_ns, in_time(s));
            }
            let delivered = m.messages.iter().filter(|x| x.delivered_ns.is_some()).count();
            prop_assert_eq!(delivered as u64, c.received);

            // Latencies: one per measured message, none negative (a
            // delivery stamped before its intended time is 0, not a wrap)
            // and none beyond the wait.
            prop_assert_eq!(m.lat.len(), c.sent);
            if c.sent > 0 {
                let most = m.lat.max();
                prop_assert!(most <= m.lat.highest_equivalent(WAIT_NS), "latency {} beyond the wait", most);
            }

            // Per stream: its measured count, and every copy of those.
            prop_assert_eq!(m.flows.len(), case.streams as usize);
            for (stream, (flow_sent, arrivals)) in m.flows.iter().enumerate() {
                let own: Vec<&(&Sent, &Vec<i64>)> =
                    measured.iter().filter(|(s, _)| s.stream == stream as u32).collect();
                prop_assert_eq!(*flow_sent, own.len() as u64);
                prop_assert_eq!(arrivals.len(), own.iter().map(|(_, o)| o.len()).sum::<usize>());
                prop_assert!(arrivals.iter().all(|a| a.seq < *flow_sent));
            }
        }
    }
}
