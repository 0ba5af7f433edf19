//! An open-loop rr trial through its impairment schedule, in bins of
//! schedule time: what was offered, answered and delivered in each, and
//! the round trips of what was answered. Pure: the samples and the
//! window are given.

use transbench_analysis::recovery::nearest_rank;
use transbench_reports::{ScheduleTimeline, TimelineBin};

use crate::measure::tracker::Sample;

/// A bin: the 100 ms the outages' rate is judged in, fine enough to show
/// a retransmission timer's steps.
pub const BIN_NS: u64 = 100_000_000;

/// Bins a timeline holds at most: an hour of [`BIN_NS`] (some 3 MB of
/// results); a longer window gets wider bins, not more of them.
pub const MAX_BINS: u64 = 36_000;

/// The bin width for a measured window of `window_ns`: [`BIN_NS`], or the
/// least multiple of it that keeps to [`MAX_BINS`].
pub fn bin_width(window_ns: u64) -> u64 {
    BIN_NS * window_ns.div_ceil(BIN_NS * MAX_BINS).max(1)
}

/// The timeline of `samples` (intended times on the monotonic clock) over
/// the measured window `[window_start_ns, window_start_ns + window_ns)`,
/// schedule time 0 at its start. A request intended outside the window is
/// left out, and so is an answer that arrived after it.
pub fn schedule_timeline(samples: &[Sample], window_start_ns: u64, window_ns: u64) -> ScheduleTimeline {
    let bin_ns = bin_width(window_ns);
    let count = window_ns.div_ceil(bin_ns) as usize;
    let mut bins = vec![TimelineBin::default(); count];
    let mut round_trips: Vec<Vec<u64>> = vec![Vec::new(); count];
    let bin_of = |mono_ns: u64| {
        let since = mono_ns.checked_sub(window_start_ns)?;
        (since < window_ns).then_some((since / bin_ns) as usize)
    };
    for s in samples {
        let Some(sent) = bin_of(s.intended_ns) else {
            continue;
        };
        bins[sent].offered += 1;
        let Some(rtt) = s.lat_ns else {
            continue;
        };
        bins[sent].answered += 1;
        round_trips[sent].push(rtt);
        if let Some(arrived) = bin_of(s.intended_ns + rtt) {
            bins[arrived].delivered += 1;
        }
    }
    for (bin, mut rtts) in bins.iter_mut().zip(round_trips) {
        rtts.sort_unstable();
        bin.p50_ns = nearest_rank(&rtts, 50);
        bin.p99_ns = nearest_rank(&rtts, 99);
        bin.max_ns = rtts.last().copied();
    }
    ScheduleTimeline { bin_ns, bins }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    /// The window opens at 7 s on the monotonic clock.
    const W: u64 = 7_000 * MS;

    fn answered(intended_ns: u64, rtt_ns: u64) -> Sample {
        Sample {
            intended_ns,
            lat_ns: Some(rtt_ns),
        }
    }

    fn lost(intended_ns: u64) -> Sample {
        Sample {
            intended_ns,
            lat_ns: None,
        }
    }

    fn counts(t: &ScheduleTimeline) -> Vec<(u64, u64, u64)> {
        t.bins
            .iter()
            .map(|b| (b.offered, b.answered, b.delivered))
            .collect()
    }

    #[test]
    fn a_bin_holds_its_start_and_not_its_end_and_the_window_bounds_the_bins() {
        let samples = [
            answered(W - 1, MS),
            answered(W, MS),
            answered(W + BIN_NS - 1, 0),
            answered(W + BIN_NS, MS),
            answered(W + 300 * MS, MS),
        ];
        let t = schedule_timeline(&samples, W, 300 * MS);
        assert_eq!(t.bin_ns, BIN_NS);
        // Before the window and at its end: in no bin.
        assert_eq!(counts(&t), [(2, 2, 2), (1, 1, 1), (0, 0, 0)]);
    }

    #[test]
    fn a_lost_request_is_offered_and_neither_answered_nor_delivered() {
        let samples = [lost(W), answered(W + 10 * MS, 5 * MS), lost(W + 150 * MS)];
        let t = schedule_timeline(&samples, W, 200 * MS);
        assert_eq!(counts(&t), [(2, 1, 1), (1, 0, 0)]);
        assert_eq!(t.bins[0].p50_ns, Some(5 * MS));
        let second = t.bins[1];
        assert_eq!((second.p50_ns, second.p99_ns, second.max_ns), (None, None, None));
    }

    #[test]
    fn bins_nothing_was_sent_in_are_empty_and_the_last_is_cut_short_by_the_window() {
        // 250 ms: three bins, the last 50 ms long.
        let t = schedule_timeline(&[answered(W + 220 * MS, MS)], W, 250 * MS);
        assert_eq!(counts(&t), [(0, 0, 0), (0, 0, 0), (1, 1, 1)]);
        assert_eq!(t.bins[0], TimelineBin::default());
        assert_eq!(
            schedule_timeline(&[], W, 250 * MS).bins,
            [TimelineBin::default(); 3]
        );
    }

    #[test]
    fn an_answer_is_delivered_in_the_bin_it_arrived_in() {
        // Sent in bin 0, answered 120 ms later in bin 1; sent in bin 1 and
        // held past the heal until bin 3; sent in bin 3 and answered after
        // the window: answered, never delivered within it.
        let samples = [
            answered(W + 50 * MS, 120 * MS),
            answered(W + 150 * MS, 200 * MS),
            answered(W + 390 * MS, 20 * MS),
        ];
        let t = schedule_timeline(&samples, W, 400 * MS);
        assert_eq!(counts(&t), [(1, 1, 0), (1, 1, 1), (0, 0, 0), (1, 1, 1)]);
        assert_eq!(
            t.bins[1].p50_ns,
            Some(200 * MS),
            "latency stays with the bin it was sent in"
        );
    }

    #[test]
    fn latency_percentiles_are_the_bin_s_nearest_ranks() {
        // 1..=100 ms in one bin, in no order.
        let samples: Vec<Sample> = (1..=100u64)
            .map(|i| answered(W + i * 997 % 100 * MS / 2, (i * 37 % 100 + 1) * MS))
            .collect();
        let t = schedule_timeline(&samples, W, BIN_NS);
        let b = t.bins[0];
        assert_eq!((b.offered, b.answered), (100, 100));
        assert_eq!(
            (b.p50_ns, b.p99_ns, b.max_ns),
            (Some(50 * MS), Some(99 * MS), Some(100 * MS))
        );
    }

    #[test]
    fn an_hour_keeps_100_ms_bins_and_longer_windows_get_wider_ones() {
        let hour = 3_600_000 * MS;
        assert_eq!(bin_width(7_000 * MS), BIN_NS);
        assert_eq!(bin_width(hour), BIN_NS);
        assert_eq!(bin_width(hour + 1), 2 * BIN_NS);
        assert_eq!(bin_width(10 * hour), 10 * BIN_NS);
        let t = schedule_timeline(&[], 0, 10 * hour);
        assert_eq!(t.bins.len() as u64, MAX_BINS);
        assert_eq!(
            schedule_timeline(&[], 0, hour + 1).bins.len() as u64,
            MAX_BINS / 2 + 1
        );
    }
}
