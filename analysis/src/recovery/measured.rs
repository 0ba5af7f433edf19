//! What a per-request log shows about an outage `[a, b)`: when the
//! application first heard of it, when answers came back, when the
//! delivered rate was back to the offered one, and what became of each
//! request; and the log binned over time for a chart.
//!
//! **Rate restored.** The delivered rate is the answers per bin (by the
//! time they arrived, late answers to old requests included), the offered
//! rate the requests per bin (by intended time), in bins of 100 ms laid
//! from the heal `b`. The rate is back from the first bin that starts a run
//! of 3 bins each delivering at least 90 % of what it was offered, and the
//! measure is that bin's start less `b`: 0 when answers flowed at the rate
//! offered from the heal on, a multiple of the bin otherwise. Why these:
//! 100 ms is the timeline's bin and, at rr's 1,000 requests/s, 100 requests
//! a bin, so that latency jitter moving an answer across a bin's edge
//! costs a percent or two and 90 % leaves room for it but not for a stall
//! of a tenth of the bin; 3 bins (300 ms) keep one catch-up burst (a
//! backlog delivered at once by a retransmission, then a wait in slow
//! start or on the next timer) from passing for a restored rate, while a
//! silence of Linux's shortest RTO (200 ms) empties a bin. A bin with
//! nothing offered delivers enough by definition: at rates under some
//! 30/s per 100 ms bin, widen the bin.
//!
//! **Fates.** An answered request is *delayed* when its latency (from its
//! intended time) exceeds a threshold, by default the p99 of the requests
//! answered before the outage began: so ~1 % of undisturbed requests would
//! be delayed, and the counts are taken only over the requests the outage
//! could touch — those intended from `a` less the threshold (one on time
//! and sent earlier was answered before `a`) until the rate was restored
//! (or the log's end, if it never was). *Lost*: never answered. Else *on
//! time*.

use super::{ErrorKind, Failure, Outage, RecoveryError, RequestOutcome, MS};

/// The bin of the timeline and of the rate's restoration: 100 ms.
pub const DEFAULT_BIN_NS: u64 = 100 * MS;

/// The share of the offered rate a bin must deliver to count as restored.
pub const DEFAULT_RESTORED_SHARE: f64 = 0.9;

/// Consecutive bins that must deliver it.
pub const DEFAULT_RESTORED_BINS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeasureConfig {
    pub bin_ns: u64,
    /// In (0, 1].
    pub restored_share: f64,
    /// At least 1.
    pub restored_bins: usize,
    /// Latency above which an answered request counts as delayed; `None`:
    /// the p99 of those answered before the outage ([`pre_outage_p99_ns`]).
    pub delay_threshold_ns: Option<u64>,
}

impl Default for MeasureConfig {
    fn default() -> Self {
        MeasureConfig {
            bin_ns: DEFAULT_BIN_NS,
            restored_share: DEFAULT_RESTORED_SHARE,
            restored_bins: DEFAULT_RESTORED_BINS,
            delay_threshold_ns: None,
        }
    }
}

impl MeasureConfig {
    fn check(&self) -> Result<(), RecoveryError> {
        if self.bin_ns == 0 {
            return Err(RecoveryError::Bin);
        }
        if !(self.restored_share > 0.0 && self.restored_share <= 1.0) || self.restored_bins == 0 {
            return Err(RecoveryError::Restored {
                share: self.restored_share,
                bins: self.restored_bins,
            });
        }
        Ok(())
    }
}

/// The first error or timeout the application saw from the outage's
/// start on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    pub at_ns: u64,
    /// Its time to detect: `at_ns` less the outage's start.
    pub after_start_ns: u64,
    pub kind: ErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    OnTime,
    /// Answered, later than the threshold.
    Delayed,
    /// Never answered.
    Lost,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FateCounts {
    pub on_time: u64,
    pub delayed: u64,
    pub lost: u64,
}

/// What a log shows about one outage. Times after the heal are measured
/// from its end `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeasuredRecovery {
    /// `None`: the application saw no error or timeout from the outage's
    /// start on.
    pub detection: Option<Detection>,
    /// The first answer at or after the heal, less the heal.
    pub first_answer_after_heal_ns: Option<u64>,
    /// The start of the first bin from which the delivered rate stayed at
    /// the offered (see the module's notes), less the heal; `None`: not
    /// within the log.
    pub rate_restored_after_heal_ns: Option<u64>,
    /// The threshold the fates were judged by.
    pub delay_threshold_ns: Option<u64>,
    /// Over the requests the outage could touch; `None` without a
    /// threshold (none given and nothing answered before the outage).
    pub fates: Option<FateCounts>,
}

/// The first of `failures` from the outage's start on (the first listed
/// of those at one time): the outage's detection. Also for errors no
/// request carries, such as a transport's, seen apart from the log.
pub fn first_failure(failures: impl IntoIterator<Item = Failure>, outage: Outage) -> Option<Detection> {
    let start = outage.start_ns();
    failures
        .into_iter()
        .filter(|f| f.at_ns >= start)
        .min_by_key(|f| f.at_ns)
        .map(|f| Detection {
            at_ns: f.at_ns,
            after_start_ns: f.at_ns - start,
            kind: f.kind,
        })
}

/// A request's fate with latency threshold `threshold_ns`.
pub fn fate(outcome: &RequestOutcome, threshold_ns: u64) -> Fate {
    match outcome.answered_ns {
        None => Fate::Lost,
        Some(at) if at.saturating_sub(outcome.intended_ns) > threshold_ns => Fate::Delayed,
        Some(_) => Fate::OnTime,
    }
}

/// The p99 latency (nearest rank) of the requests answered before the
/// outage began; `None` if none were.
pub fn pre_outage_p99_ns(outcomes: &[RequestOutcome], outage: Outage) -> Option<u64> {
    let mut latencies: Vec<u64> = outcomes
        .iter()
        .filter_map(|o| {
            let at = o.answered_ns.filter(|&at| at < outage.start_ns())?;
            Some(at.saturating_sub(o.intended_ns))
        })
        .collect();
    latencies.sort_unstable();
    nearest_rank(&latencies, 99)
}

/// The `percent`th percentile of sorted values, nearest rank; `None` when
/// there are none.
pub fn nearest_rank(sorted: &[u64], percent: usize) -> Option<u64> {
    let rank = (sorted.len() * percent).div_ceil(100);
    sorted.get(rank.checked_sub(1)?).copied()
}

/// The outage as the log shows it; `outcomes` in any order, on the
/// outage's clock.
pub fn measure_recovery(
    outcomes: &[RequestOutcome],
    outage: Outage,
    config: &MeasureConfig,
) -> Result<MeasuredRecovery, RecoveryError> {
    config.check()?;
    let heal = outage.end_ns();
    let detection = first_failure(outcomes.iter().filter_map(|o| o.failure), outage);
    let first_answer_after_heal_ns = outcomes
        .iter()
        .filter_map(|o| o.answered_ns)
        .filter(|&at| at >= heal)
        .min()
        .map(|at| at - heal);
    let rate_restored_after_heal_ns = rate_restored_after(outcomes, heal, config);
    let delay_threshold_ns = config
        .delay_threshold_ns
        .or_else(|| pre_outage_p99_ns(outcomes, outage));
    let fates = delay_threshold_ns.map(|threshold| {
        let from = outage.start_ns().saturating_sub(threshold);
        let until = rate_restored_after_heal_ns.map_or(u64::MAX, |after| heal + after);
        let mut counts = FateCounts::default();
        for o in outcomes.iter().filter(|o| (from..until).contains(&o.intended_ns)) {
            match fate(o, threshold) {
                Fate::OnTime => counts.on_time += 1,
                Fate::Delayed => counts.delayed += 1,
                Fate::Lost => counts.lost += 1,
            }
        }
        counts
    });
    Ok(MeasuredRecovery {
        detection,
        first_answer_after_heal_ns,
        rate_restored_after_heal_ns,
        delay_threshold_ns,
        fates,
    })
}

/// The first bin laid from `heal` that starts a run of restored bins,
/// its start less `heal`. Only bins the schedule covers whole count: up to
/// the last intended send.
fn rate_restored_after(outcomes: &[RequestOutcome], heal: u64, config: &MeasureConfig) -> Option<u64> {
    let last_intended = outcomes.iter().map(|o| o.intended_ns).max()?;
    let bins = usize::try_from(last_intended.checked_sub(heal)? / config.bin_ns).ok()?;
    let bin_of = |t: u64| {
        let i = usize::try_from(t.checked_sub(heal)? / config.bin_ns).ok()?;
        (i < bins).then_some(i)
    };
    let mut offered = vec![0u64; bins];
    let mut delivered = vec![0u64; bins];
    for o in outcomes {
        if let Some(i) = bin_of(o.intended_ns) {
            offered[i] += 1;
        }
        if let Some(i) = o.answered_ns.and_then(bin_of) {
            delivered[i] += 1;
        }
    }
    let restored: Vec<bool> = offered
        .iter()
        .zip(&delivered)
        .map(|(&o, &d)| d as f64 >= config.restored_share * o as f64)
        .collect();
    let first = restored
        .windows(config.restored_bins)
        .position(|run| run.iter().all(|&r| r))?;
    Some(first as u64 * config.bin_ns)
}

#[cfg(test)]
mod tests {
    use super::super::{Failure, S};
    use super::*;

    const T0: u64 = 50 * S;
    const A: u64 = T0 + 3 * S;
    const B: u64 = A + S;
    const RTT: u64 = 20 * MS;
    const LOSS_TIMEOUT: u64 = 2 * S;

    /// An open-loop schedule at 1,000/s for 10 s from T0; each request
    /// answered as `answer` says, `None` being lost and timed out.
    fn log(answer: impl Fn(u64) -> Option<u64>) -> Vec<RequestOutcome> {
        (0..10_000)
            .map(|i| {
                let intended_ns = T0 + i * MS;
                let answered_ns = answer(intended_ns);
                RequestOutcome {
                    intended_ns,
                    answered_ns,
                    failure: answered_ns.is_none().then_some(Failure {
                        at_ns: intended_ns + LOSS_TIMEOUT,
                        kind: ErrorKind::ApplicationTimeout,
                    }),
                }
            })
            .collect()
    }

    fn outage() -> Outage {
        Outage::new(A, B).unwrap()
    }

    /// Datagrams: what is sent into the outage is lost, the rest answered
    /// in 1 ms.
    fn udp_like() -> Vec<RequestOutcome> {
        log(|t| (!(A..B).contains(&t)).then_some(t + MS))
    }

    /// One ordered connection: every request from the outage's start until
    /// the answer to the retransmission at a + 1.4 s, a round trip after
    /// it, is answered then; the rest in 1 ms.
    fn tcp_like() -> Vec<RequestOutcome> {
        let answer = A + 1_400 * MS + RTT;
        log(|t| Some(if (A..answer).contains(&t) { answer } else { t + MS }))
    }

    #[test]
    fn datagrams_lose_the_outage_and_come_back_at_once() {
        let measured = measure_recovery(&udp_like(), outage(), &MeasureConfig::default()).unwrap();
        assert_eq!(
            measured.detection,
            Some(Detection {
                at_ns: A + LOSS_TIMEOUT,
                after_start_ns: LOSS_TIMEOUT,
                kind: ErrorKind::ApplicationTimeout
            })
        );
        assert_eq!(measured.first_answer_after_heal_ns, Some(MS));
        assert_eq!(measured.rate_restored_after_heal_ns, Some(0));
        assert_eq!(measured.delay_threshold_ns, Some(MS));
        // From a − 1 ms (answered at a, on time) to the heal.
        assert_eq!(
            measured.fates,
            Some(FateCounts {
                on_time: 1,
                delayed: 0,
                lost: 1_000
            })
        );
    }

    #[test]
    fn an_ordered_connection_holds_every_request_until_its_retransmission() {
        let measured = measure_recovery(&tcp_like(), outage(), &MeasureConfig::default()).unwrap();
        assert_eq!(measured.detection, None, "answered within the loss timeout");
        assert_eq!(measured.first_answer_after_heal_ns, Some(400 * MS + RTT));
        // The bins from b: nothing for four, then the backlog and the rate.
        assert_eq!(measured.rate_restored_after_heal_ns, Some(400 * MS));
        assert_eq!(
            measured.fates,
            Some(FateCounts {
                on_time: 1,
                delayed: 1_400,
                lost: 0
            })
        );
    }

    #[test]
    fn detection_is_the_first_error_from_the_outage_on() {
        let mut outcomes = tcp_like();
        let failure = |at_ns, kind| Some(Failure { at_ns, kind });
        // Before the outage: not its doing.
        outcomes[100].failure = failure(A - MS, ErrorKind::ConnectionReset);
        outcomes[3_001].failure = failure(A + 900 * MS, ErrorKind::ConnectionTimedOut);
        outcomes[3_002].failure = failure(A + 900 * MS, ErrorKind::Other);
        outcomes[3_000].failure = failure(A + 950 * MS, ErrorKind::HostUnreachable);
        let measured = measure_recovery(&outcomes, outage(), &MeasureConfig::default()).unwrap();
        assert_eq!(
            measured.detection,
            Some(Detection {
                at_ns: A + 900 * MS,
                after_start_ns: 900 * MS,
                kind: ErrorKind::ConnectionTimedOut
            })
        );
    }

    #[test]
    fn errors_apart_from_the_log_are_detected_the_same_way() {
        let seen = |at_ns, kind| Failure { at_ns, kind };
        let errors = [
            seen(A - MS, ErrorKind::ConnectionReset),
            seen(A + 3 * MS, ErrorKind::HostUnreachable),
            seen(A + 2 * MS, ErrorKind::HostUnreachable),
        ];
        assert_eq!(
            first_failure(errors, outage()),
            Some(Detection {
                at_ns: A + 2 * MS,
                after_start_ns: 2 * MS,
                kind: ErrorKind::HostUnreachable
            })
        );
        assert_eq!(first_failure([seen(A - 1, ErrorKind::Other)], outage()), None);
    }

    #[test]
    fn a_burst_then_a_second_stall_is_not_a_restored_rate() {
        // The backlog comes at b + 0.42 s, then nothing until b + 0.8 s.
        let outcomes = log(|t| {
            Some(match t {
                t if (A..B + 400 * MS).contains(&t) => B + 420 * MS,
                t if (B + 400 * MS..B + 780 * MS).contains(&t) => B + 800 * MS,
                t => t + MS,
            })
        });
        let measured = measure_recovery(&outcomes, outage(), &MeasureConfig::default()).unwrap();
        assert_eq!(measured.rate_restored_after_heal_ns, Some(800 * MS));
        // A single bin suffices if asked for.
        let one = MeasureConfig {
            restored_bins: 1,
            ..MeasureConfig::default()
        };
        let measured = measure_recovery(&outcomes, outage(), &one).unwrap();
        assert_eq!(measured.rate_restored_after_heal_ns, Some(400 * MS));
    }

    #[test]
    fn a_rate_never_restored_within_the_log_is_none() {
        let never = log(|t| (t < A).then_some(t + MS));
        let measured = measure_recovery(&never, outage(), &MeasureConfig::default()).unwrap();
        assert_eq!(measured.rate_restored_after_heal_ns, None);
        assert_eq!(measured.first_answer_after_heal_ns, None);
        // Counted to the log's end.
        assert_eq!(measured.fates.unwrap().lost, 7_000);
        // A log that ends before the heal has no bins after it.
        let short: Vec<RequestOutcome> = udp_like().into_iter().filter(|o| o.intended_ns < A).collect();
        let measured = measure_recovery(&short, outage(), &MeasureConfig::default()).unwrap();
        assert_eq!(measured.rate_restored_after_heal_ns, None);
    }

    #[test]
    fn the_delay_threshold_is_the_pre_outage_p99_unless_given() {
        // Latencies 1..=100 ms before the outage, repeating.
        let outcomes = log(|t| Some(t + ((t - T0) / MS % 100 + 1) * MS));
        assert_eq!(pre_outage_p99_ns(&outcomes, outage()), Some(99 * MS));
        let given = MeasureConfig {
            delay_threshold_ns: Some(50 * MS),
            ..MeasureConfig::default()
        };
        let measured = measure_recovery(&outcomes, outage(), &given).unwrap();
        assert_eq!(measured.delay_threshold_ns, Some(50 * MS));
        assert_eq!(fate(&outcomes[0], 0), Fate::Delayed);
        assert_eq!(fate(&outcomes[0], MS), Fate::OnTime);
        let lost = RequestOutcome {
            answered_ns: None,
            ..outcomes[0]
        };
        assert_eq!(fate(&lost, u64::MAX), Fate::Lost);

        // Nothing answered before the outage: no threshold, no fates.
        let late = log(|t| Some(t.max(B) + MS));
        let measured = measure_recovery(&late, outage(), &MeasureConfig::default()).unwrap();
        assert_eq!((measured.delay_threshold_ns, measured.fates), (None, None));
        assert_eq!(nearest_rank(&[], 99), None);
        assert_eq!(nearest_rank(&[7], 1), Some(7));
    }

    #[test]
    fn a_bad_configuration_is_refused() {
        let refused = |config: MeasureConfig| measure_recovery(&[], outage(), &config).unwrap_err();
        let default = MeasureConfig::default();
        assert_eq!(
            refused(MeasureConfig { bin_ns: 0, ..default }),
            RecoveryError::Bin
        );
        for (share, bins) in [(0.0, 3), (1.5, 3), (f64::NAN, 3), (0.9, 0)] {
            assert!(matches!(
                refused(MeasureConfig {
                    restored_share: share,
                    restored_bins: bins,
                    ..default
                }),
                RecoveryError::Restored { .. }
            ));
        }
        assert_eq!(
            Outage::new(A, A),
            Err(RecoveryError::EmptyOutage {
                start_ns: A,
                end_ns: A
            })
        );
    }
}
