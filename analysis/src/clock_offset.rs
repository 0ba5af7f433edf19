//! The offset between the sender's and the receiver's clocks, from probes
//! echoed over the control channel, as NTP reckons it (RFC 5905, 8), with
//! a bound that holds however unequal the two directions' delays are.
//!
//! An exchange is `t1` (sender sends), `t2` (receiver receives), `t3`
//! (receiver replies), `t4` (sender receives); `t1` and `t4` are read on
//! the sender's clock, `t2` and `t3` on the receiver's. Neither direction
//! takes negative time, so the offset θ (receiver minus sender) obeys
//! `t3 - t4 <= θ <= t2 - t1`: the interval NTP writes as θᵢ ± δᵢ/2. Every
//! exchange holds it, so the offset lies in the intersection of all of
//! theirs: its top comes from the fastest trip out, its bottom from the
//! fastest trip back (possibly of another exchange), so it is never wider
//! than the minimum-delay exchange's own δ/2 (NTP's filter) and often
//! narrower. The estimate is the intersection's middle, its bound half
//! its width. No assumption about the path's symmetry enters it; the
//! price is that the bound is about half the smallest round trip.
//!
//! Clocks drift apart. Within one batch (tens of milliseconds) each
//! exchange's interval is widened by [`MAX_DRIFT_PPM`] times its distance
//! from the batch's middle, as NTP grows its dispersion by its frequency
//! tolerance. Across a trial, two batches, one before it and one after,
//! measure the drift, and the estimate becomes a line through both
//! ([`OffsetEstimate::bracketing`]): a constant frequency difference is
//! corrected rather than added to the bound. A clock stepped, or slewed
//! faster than assumed, shows as exchanges that contradict each other or
//! as drift beyond the assumption: an error, never a quiet estimate.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The largest rate at which the two clocks are assumed to drift apart
/// within one batch of exchanges, parts per million. Crystals are made to
/// ±50 ppm or better, so two hosts differ by at most 100; NTP or chrony
/// keep them within a few. A clock being slewed faster (chrony corrects a
/// large offset at up to 83,333 ppm) breaks this: the batch then
/// contradicts itself, or [`OffsetEstimate::bracketing`] sees the drift,
/// and says so.
pub const MAX_DRIFT_PPM: f64 = 100.0;

/// One-way delays are reported only when the offset's bound is at most
/// this share of the smallest one-way p50 it corrects. The bound shifts
/// every one-way delay of a trial alike (spread, jitter and percentiles
/// relative to each other stay exact), so what it spoils is the level: at
/// a tenth, a one-way p50 is still right to its first digit. On a
/// symmetric path the bound is about the base one-way delay, so this
/// admits one-way figures once queueing has made them ten times that: the
/// loaded paths where which direction queues is the question.
pub const MAX_BOUND_SHARE_OF_ONE_WAY: f64 = 0.1;

/// One probe and its echo, ns: `t1` and `t4` on the sender's clock, `t2`
/// and `t3` on the receiver's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    pub t1: u64,
    pub t2: u64,
    pub t3: u64,
    pub t4: u64,
}

impl Exchange {
    /// NTP's θ, ((t2 - t1) + (t3 - t4)) / 2: the offset were both ways
    /// equally long.
    pub fn offset_ns(&self) -> f64 {
        (self.most_ns() + self.least_ns()) as f64 / 2.0
    }

    /// NTP's δ, (t4 - t1) - (t3 - t2): the round trip less the time the
    /// receiver held the probe. Negative only when the clocks misbehaved.
    pub fn delay_ns(&self) -> i128 {
        self.most_ns() - self.least_ns()
    }

    /// The largest offset a non-negative delay out allows: t2 - t1 (θ + δ/2).
    fn most_ns(&self) -> i128 {
        i128::from(self.t2) - i128::from(self.t1)
    }

    /// The smallest offset a non-negative delay back allows: t3 - t4 (θ - δ/2).
    fn least_ns(&self) -> i128 {
        i128::from(self.t3) - i128::from(self.t4)
    }
}

/// The receiver's clock against the sender's, as the exchanges bound it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OffsetEstimate {
    /// Receiver's clock minus sender's at `from_ns`, ns.
    pub offset_ns: i64,
    /// The true offset at any sender time in `from_ns..=to_ns` is within
    /// this of [`OffsetEstimate::offset_at`] that time, ns.
    pub bound_ns: u64,
    /// The sender-clock span the bound holds over: one batch's own, or
    /// for two batches from the middle of the first to that of the second.
    pub from_ns: u64,
    pub to_ns: u64,
    /// Exchanges it rests on.
    pub exchanges: u32,
    /// The smallest round trip among them (δ), ns.
    pub min_rtt_ns: u64,
    /// How fast the receiver's clock gains on the sender's, measured
    /// between two batches; `None` for one (then the offset is taken as
    /// constant over its short span, within [`MAX_DRIFT_PPM`]).
    pub drift: Option<Drift>,
}

/// The rate at which the receiver's clock gains on the sender's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// Parts per million: ns gained per ms.
    pub ppm: f64,
    /// The true rate is within this of `ppm`: both batches' bounds over
    /// the time between them.
    pub bound_ppm: f64,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum ClockOffsetError {
    #[error("no clock exchanges to estimate an offset from")]
    NoExchanges,
    #[error(
        "the clock exchanges contradict each other (the offset would be at least {least_ns} ns and at \
         most {most_ns} ns): a clock stepped, or they drifted apart faster than {MAX_DRIFT_PPM} ppm"
    )]
    Inconsistent { least_ns: i128, most_ns: i128 },
    #[error("the clocks drift apart at {ppm:.1} ppm (at least {at_least_ppm:.1}), faster than the {MAX_DRIFT_PPM} ppm each batch assumed")]
    DriftBeyondAssumed { ppm: f64, at_least_ppm: f64 },
    #[error("the later clock estimate does not come after the earlier one")]
    OutOfOrder,
    #[error("a clock offset beyond 292 years: not two CLOCK_MONOTONIC clocks")]
    OutOfRange,
}

/// What rounding the line of a two-batch estimate to whole ns, and clocks
/// read in whole ns, can add to its bound, ns.
const LINE_ROUNDING_NS: u64 = 2;

impl OffsetEstimate {
    /// The offset over one batch of exchanges, taken close together.
    pub fn from_exchanges(batch: &[Exchange]) -> Result<OffsetEstimate, ClockOffsetError> {
        let (Some(from_ns), Some(to_ns)) =
            (batch.iter().map(|e| e.t1).min(), batch.iter().map(|e| e.t4).max())
        else {
            return Err(ClockOffsetError::NoExchanges);
        };
        let to_ns = to_ns.max(from_ns);
        let middle = from_ns + (to_ns - from_ns) / 2;
        // How far the offset may have moved between an exchange and the
        // middle (the probe reached the receiver somewhere in t1..t4).
        let drifted = |e: &Exchange| {
            let far = e.t1.abs_diff(middle).max(e.t4.abs_diff(middle));
            i128::from(drift_ns(far))
        };
        let (most, least) = batch.iter().fold((i128::MAX, i128::MIN), |(most, least), e| {
            (
                most.min(e.most_ns() + drifted(e)),
                least.max(e.least_ns() - drifted(e)),
            )
        });
        if least > most {
            return Err(ClockOffsetError::Inconsistent {
                least_ns: least,
                most_ns: most,
            });
        }
        let offset = (least + most).div_euclid(2);
        // At the middle within most - offset (>= offset - least); anywhere
        // in the span within that and the drift over half of it.
        let half_span = drift_ns((middle - from_ns).max(to_ns - middle));
        let bound = u64::try_from(most - offset)
            .ok()
            .and_then(|b| b.checked_add(half_span))
            .ok_or(ClockOffsetError::OutOfRange)?;
        let min_rtt = batch.iter().map(Exchange::delay_ns).min().unwrap_or(0).max(0);
        Ok(OffsetEstimate {
            offset_ns: i64::try_from(offset).map_err(|_| ClockOffsetError::OutOfRange)?,
            bound_ns: bound,
            from_ns,
            to_ns,
            exchanges: u32::try_from(batch.len()).unwrap_or(u32::MAX),
            min_rtt_ns: u64::try_from(min_rtt).unwrap_or(u64::MAX),
            drift: None,
        })
    }

    /// The offset over the time between two estimates, `before` and
    /// `after` (a trial's, taken either side of it), as the line through
    /// both at their middles: a constant drift is corrected, not bounded.
    /// Between the two middles the line is out by at most the larger of
    /// their bounds (each end by its own), whatever the drift.
    pub fn bracketing(
        before: &OffsetEstimate,
        after: &OffsetEstimate,
    ) -> Result<OffsetEstimate, ClockOffsetError> {
        let (a, b) = (before.middle_ns(), after.middle_ns());
        if b <= a {
            return Err(ClockOffsetError::OutOfOrder);
        }
        let (offset_a, offset_b) = (before.offset_at(a), after.offset_at(b));
        let span = (b - a) as f64;
        let ppm = (i128::from(offset_b) - i128::from(offset_a)) as f64 / span * 1e6;
        let bound_ppm = (before.bound_ns as f64 + after.bound_ns as f64) / span * 1e6;
        let at_least_ppm = ppm.abs() - bound_ppm;
        if at_least_ppm > MAX_DRIFT_PPM {
            return Err(ClockOffsetError::DriftBeyondAssumed { ppm, at_least_ppm });
        }
        Ok(OffsetEstimate {
            offset_ns: offset_a,
            bound_ns: before
                .bound_ns
                .max(after.bound_ns)
                .saturating_add(LINE_ROUNDING_NS),
            from_ns: a,
            to_ns: b,
            exchanges: before.exchanges.saturating_add(after.exchanges),
            min_rtt_ns: before.min_rtt_ns.min(after.min_rtt_ns),
            drift: Some(Drift { ppm, bound_ppm }),
        })
    }

    /// The offset at sender time `sender_ns`: with a measured drift, on
    /// its line.
    pub fn offset_at(&self, sender_ns: u64) -> i64 {
        let Some(drift) = self.drift else {
            return self.offset_ns;
        };
        let since = sender_ns as f64 - self.from_ns as f64;
        self.offset_ns
            .saturating_add((drift.ppm * 1e-6 * since).round() as i64)
    }

    /// A receiver-clock time on the sender's clock, within `bound_ns`
    /// (when it falls inside `from_ns..=to_ns`); `None` before the
    /// sender's clock began.
    pub fn on_sender_clock(&self, receiver_ns: u64) -> Option<u64> {
        // The offset at the sender's time of the instant, which itself
        // needs the offset: once is enough, as drift is ppm of ppm.
        let roughly = i128::from(receiver_ns) - i128::from(self.offset_ns);
        let at = u64::try_from(roughly.max(0)).unwrap_or(u64::MAX);
        u64::try_from(i128::from(receiver_ns) - i128::from(self.offset_at(at))).ok()
    }

    /// Whether one-way delays this estimate corrected can be reported:
    /// its bound at most [`MAX_BOUND_SHARE_OF_ONE_WAY`] of the smallest of
    /// their p50s (e.g. the way out's and the way back's), ns.
    pub fn one_way_reportable(&self, one_way_p50s_ns: &[i64]) -> bool {
        one_way_p50s_ns
            .iter()
            .min()
            .is_some_and(|&p50| p50 > 0 && self.bound_ns as f64 <= MAX_BOUND_SHARE_OF_ONE_WAY * p50 as f64)
    }

    fn middle_ns(&self) -> u64 {
        self.from_ns + (self.to_ns.saturating_sub(self.from_ns)) / 2
    }
}

/// How far [`MAX_DRIFT_PPM`] moves the offset over `ns`, rounded up.
fn drift_ns(ns: u64) -> u64 {
    (ns as f64 * MAX_DRIFT_PPM * 1e-6).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkemu::rng::Prng;
    use proptest::prelude::*;

    /// Three days and a bit: hosts booted at different times.
    const OFFSET: i64 = -259_200_123_456_789;
    const START: u64 = 400_000_000_000_000;
    const SPACING: u64 = 1_000_000;

    /// Two clocks: the sender's reads true time, the receiver's reads it
    /// `offset` ns ahead, gaining `ppb` ns per second (parts per billion).
    #[derive(Clone, Copy)]
    struct FakeClocks {
        offset: i64,
        ppb: i64,
    }

    impl FakeClocks {
        fn still(offset: i64) -> Self {
            FakeClocks { offset, ppb: 0 }
        }

        /// The receiver's offset at true time `t`: whole ns, as a clock reads.
        fn offset_at(&self, t: u64) -> i64 {
            let since = i128::from(t) - i128::from(START);
            self.offset + (since * i128::from(self.ppb)).div_euclid(1_000_000_000) as i64
        }

        fn receiver(&self, t: u64) -> u64 {
            (t as i64 + self.offset_at(t)) as u64
        }

        /// A probe sent at `t1`, `out` ns on the way, held `held` ns, `back`
        /// ns on the way back.
        fn exchange(&self, t1: u64, out: u64, held: u64, back: u64) -> Exchange {
            let (arrive, reply) = (t1 + out, t1 + out + held);
            Exchange {
                t1,
                t2: self.receiver(arrive),
                t3: self.receiver(reply),
                t4: reply + back,
            }
        }
    }

    /// `est` holds the clocks' true offset within its bound at every
    /// sender time in its span.
    fn assert_holds(est: &OffsetEstimate, clocks: FakeClocks, times: impl IntoIterator<Item = u64>) {
        for t in times {
            assert!((est.from_ns..=est.to_ns).contains(&t));
            let error = est.offset_at(t).abs_diff(clocks.offset_at(t));
            assert!(error <= est.bound_ns, "out by {error} ns at {t}: {est:?}");
        }
    }

    #[test]
    fn ntps_offset_and_delay_make_the_exchanges_interval() {
        let e = FakeClocks::still(5_000).exchange(START, 300, 20, 100);
        assert_eq!(e.offset_ns(), 5_100.0, "half the asymmetry shows as offset");
        assert_eq!(e.delay_ns(), 400);
        assert_eq!(e.most_ns() as f64, e.offset_ns() + e.delay_ns() as f64 / 2.0);
        assert_eq!(e.least_ns() as f64, e.offset_ns() - e.delay_ns() as f64 / 2.0);
    }

    #[test]
    fn a_known_offset_with_symmetric_delays_is_recovered_exactly() {
        let clocks = FakeClocks::still(OFFSET);
        // The fastest exchange is in the middle: the drift allowance is
        // then least where the bound is decided.
        let delays = [900, 400, 700, 150, 150, 500, 800];
        let batch: Vec<Exchange> = delays
            .iter()
            .enumerate()
            .map(|(i, &d)| clocks.exchange(START + i as u64 * SPACING, d, 30, d))
            .collect();
        let est = OffsetEstimate::from_exchanges(&batch).unwrap();
        assert_eq!(est.offset_ns, OFFSET);
        assert_eq!(est.min_rtt_ns, 300);
        assert_eq!(est.exchanges, 7);
        assert_eq!((est.from_ns, est.to_ns), (START, START + 6 * SPACING + 830 + 800));
        assert!(est.bound_ns >= 150 && est.bound_ns <= 150 + 2 * drift_ns(4 * SPACING));
        assert_eq!(est.drift, None);
        assert_eq!(est.on_sender_clock(clocks.receiver(START + 7)), Some(START + 7));
    }

    #[test]
    fn asymmetric_jittered_delays_keep_the_true_offset_inside_the_bound() {
        let rng = &mut Prng::new(20);
        let draw = |rng: &mut Prng, below: u32| u64::from(rng.below(below));
        // Mostly the base delay and a little, now and then a queue.
        let jitter = |rng: &mut Prng, base: u64| match draw(rng, 4) {
            0 => base + draw(rng, 20_000_000),
            _ => base + draw(rng, 20_000),
        };
        for case in 0..2_000 {
            let clocks = FakeClocks {
                offset: draw(rng, 2_000_000_000) as i64 - 1_000_000_000,
                ppb: draw(rng, 200_001) as i64 - 100_000,
            };
            // A slow way out, a fast way back.
            let (base_out, base_back) = (50_000 + draw(rng, 200_000), 10_000 + draw(rng, 50_000));
            let batch: Vec<Exchange> = (0..32)
                .map(|i| {
                    let t1 = START + case * 1_000_000_000 + i * SPACING;
                    let (out, held) = (jitter(rng, base_out), draw(rng, 50_000));
                    clocks.exchange(t1, out, held, jitter(rng, base_back))
                })
                .collect();
            let est = OffsetEstimate::from_exchanges(&batch).unwrap();
            assert_holds(&est, clocks, batch.iter().flat_map(|e| [e.t1, e.t4]));
            // Never wider than the fastest exchange's own δ/2 and the drift allowance.
            let allowance = 2 * drift_ns(est.to_ns - est.from_ns);
            assert!(est.bound_ns <= est.min_rtt_ns / 2 + 1 + allowance, "{est:?}");
        }
    }

    /// A batch of 32 exchanges from `t`, with delays that keep it
    /// consistent at any drift within the assumption.
    fn batch_at(clocks: FakeClocks, t: u64) -> Vec<Exchange> {
        (0..32)
            .map(|i| clocks.exchange(t + i * SPACING, 80_000 + i * 1_000, 20_000, 60_000))
            .collect()
    }

    #[test]
    fn drift_between_two_batches_is_measured_and_corrected() {
        // 40 ppm: 400 µs over the 10 s between the batches, more than the
        // bound of either.
        let clocks = FakeClocks {
            offset: OFFSET,
            ppb: 40_000,
        };
        let before = OffsetEstimate::from_exchanges(&batch_at(clocks, START)).unwrap();
        let after = OffsetEstimate::from_exchanges(&batch_at(clocks, START + 10_000_000_000)).unwrap();
        let est = OffsetEstimate::bracketing(&before, &after).unwrap();
        let drift = est.drift.unwrap();
        assert!((drift.ppm - 40.0).abs() <= drift.bound_ppm, "{drift:?}");
        assert!(drift.bound_ppm < 20.0, "{drift:?}");
        assert_eq!(est.exchanges, 64);
        assert!(est.bound_ns <= before.bound_ns.max(after.bound_ns) + LINE_ROUNDING_NS);
        let steps = (0..=100).map(|k| est.from_ns + (est.to_ns - est.from_ns) / 100 * k);
        assert_holds(&est, clocks, steps.chain([est.to_ns]));
        // Without the line, the offset would be out by the drift.
        let mid = est.from_ns + (est.to_ns - est.from_ns) / 2;
        assert!(before.offset_at(mid).abs_diff(clocks.offset_at(mid)) > est.bound_ns);
        // A receiver's timestamp mid-trial, on the sender's clock.
        let back = est.on_sender_clock(clocks.receiver(mid)).unwrap();
        assert!(back.abs_diff(mid) <= est.bound_ns);
    }

    #[test]
    fn drift_beyond_the_assumption_is_refused() {
        // 2,000 ppm: each batch still holds together over its 31 ms (the
        // offset moves 62 µs, less than a round trip), but the line
        // through both shows the drift.
        let clocks = FakeClocks {
            offset: OFFSET,
            ppb: 2_000_000,
        };
        let batch = |t| -> Vec<Exchange> {
            (0..32)
                .map(|i| clocks.exchange(t + i * SPACING, 100_000, 20_000, 100_000))
                .collect()
        };
        let before = OffsetEstimate::from_exchanges(&batch(START)).unwrap();
        let after = OffsetEstimate::from_exchanges(&batch(START + 10_000_000_000)).unwrap();
        let err = OffsetEstimate::bracketing(&before, &after).unwrap_err();
        assert!(
            matches!(err, ClockOffsetError::DriftBeyondAssumed { ppm, .. } if (ppm - 2_000.0).abs() < 10.0)
        );
        assert_eq!(
            OffsetEstimate::bracketing(&after, &before),
            Err(ClockOffsetError::OutOfOrder)
        );
    }

    #[test]
    fn a_stepped_clock_empties_the_intersection() {
        let clocks = FakeClocks::still(OFFSET);
        let mut batch = batch_at(clocks, START);
        // The receiver's clock jumps 5 ms ahead halfway through.
        for e in &mut batch[16..] {
            e.t2 += 5_000_000;
            e.t3 += 5_000_000;
        }
        let err = OffsetEstimate::from_exchanges(&batch).unwrap_err();
        assert!(matches!(err, ClockOffsetError::Inconsistent { least_ns, most_ns } if least_ns > most_ns));
        assert!(err.to_string().contains("a clock stepped"));
        // An exchange whose receiver held the probe longer than its round trip.
        let e = Exchange {
            t1: 10,
            t2: 100,
            t3: 200,
            t4: 20,
        };
        assert!(e.delay_ns() < 0);
        assert!(matches!(
            OffsetEstimate::from_exchanges(&[e]),
            Err(ClockOffsetError::Inconsistent { .. })
        ));
        assert_eq!(
            OffsetEstimate::from_exchanges(&[]),
            Err(ClockOffsetError::NoExchanges)
        );
    }

    #[test]
    fn one_way_delays_are_reportable_only_where_the_bound_is_small_against_them() {
        let est = OffsetEstimate {
            offset_ns: 0,
            bound_ns: 100_000,
            from_ns: 0,
            to_ns: 1,
            exchanges: 32,
            min_rtt_ns: 200_000,
            drift: None,
        };
        assert!(est.one_way_reportable(&[5_000_000, 1_000_000]));
        assert!(!est.one_way_reportable(&[5_000_000, 999_999]));
        assert!(!est.one_way_reportable(&[5_000_000, -3]));
        assert!(!est.one_way_reportable(&[]));
    }

    #[test]
    fn an_estimate_reads_back_from_json_as_written() {
        let clocks = FakeClocks {
            offset: OFFSET,
            ppb: -7_300,
        };
        let before = OffsetEstimate::from_exchanges(&batch_at(clocks, START)).unwrap();
        let after = OffsetEstimate::from_exchanges(&batch_at(clocks, START + 60_000_000_000)).unwrap();
        for est in [before, OffsetEstimate::bracketing(&before, &after).unwrap()] {
            let json = serde_json::to_string(&est).unwrap();
            assert!(
                json.contains("\"offset_ns\":") && json.contains("\"bound_ns\":"),
                "{json}"
            );
            assert_eq!(serde_json::from_str::<OffsetEstimate>(&json).unwrap(), est);
        }
    }

    /// A delay of one way: often next to nothing, where drift within the
    /// batch decides the bound, or anything up to 2 s.
    fn delay() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..1_000, 0u64..2_000_000_000]
    }

    proptest! {
        #[test]
        fn the_true_offset_is_within_the_bound_whenever_delays_are_non_negative(
            offset in -(1i64 << 55)..(1i64 << 55),
            ppb in -100_000i64..=100_000,
            // Beyond any offset, so the receiver's clock reads no negative time.
            start in (1u64 << 56)..(1u64 << 58),
            trips in proptest::collection::vec((0u64..10_000_000, delay(), 0u64..1_000_000, delay()), 1..48),
        ) {
            let clocks = FakeClocks { offset, ppb };
            let mut t = start;
            let batch: Vec<Exchange> = trips
                .iter()
                .map(|&(gap, out, held, back)| {
                    t += gap;
                    let e = clocks.exchange(t, out, held, back);
                    t = e.t4;
                    e
                })
                .collect();
            let est = OffsetEstimate::from_exchanges(&batch).unwrap();
            for time in batch.iter().flat_map(|e| [e.t1, e.t4]) {
                let error = est.offset_at(time).abs_diff(clocks.offset_at(time));
                prop_assert!(error <= est.bound_ns, "out by {} at {}: {:?}", error, time, est);
            }
        }
    }
}
