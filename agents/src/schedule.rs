//! The open-loop schedule: request i has the intended send time
//! `t0 + i / rate`, fixed before the run starts, so a slow response never
//! delays the requests after it (no coordinated omission). What a pacer
//! can keep bounds the rate asked for; a pacer that falls behind stops
//! sending when the window is over, so every trial ends on time.

use std::time::Duration;

/// Lead time between scheduling and the first intended send time.
pub const START_LEAD_NS: u64 = 5_000_000;

/// The shortest period between intended send times a trial may ask for,
/// all its streams together: 1 us, a million sends a second. Each one
/// costs the sender's single thread a clock read, a send-lag record, the
/// message's own record and (but for GSO batches) a system call, which
/// together take longer; and the pacer's last stretch spins from one
/// clock read to the next, yielding to the runtime between them, so it
/// cannot tell deadlines closer than that apart either. A shorter period
/// would only measure how far the sender falls behind.
pub const MIN_PERIOD_NS: f64 = 1_000.0;

/// A pacer that fell behind stops sending this long after its window
/// closed; what it has not sent by then is never sent. A hundred times
/// the send lag a valid trial may have at its p99 (1 ms), so a trial that
/// kept its schedule loses no send to it.
pub const LATE_SEND_NS: u64 = 100_000_000;

/// What a trial's data plane may take beyond warm-up, duration and loss
/// timeout: the late sends above, the lead before the first send, and
/// settling what was sent (the last expiries, closing connections) on a
/// loaded machine. A data plane still running then is stopped, and the
/// trial fails.
pub const GRACE: Duration = Duration::from_secs(2);

/// The longest a trial's data plane may run, from its start.
pub fn data_plane_limit(warmup: Duration, duration: Duration, loss_timeout: Duration) -> Duration {
    warmup + duration + loss_timeout + GRACE
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenLoopSchedule {
    t0_ns: u64,
    period_ns: f64,
    warmup_count: u64,
    total: u64,
    /// `t0 + warmup + duration`: when the window closes.
    end_ns: u64,
}

impl OpenLoopSchedule {
    /// Requests whose intended time falls in `[t0, t0 + warmup)` are warm-up;
    /// those in `[t0 + warmup, t0 + warmup + duration)` are measured.
    pub fn new(t0_ns: u64, rate: f64, warmup: Duration, duration: Duration) -> Self {
        assert!(
            rate.is_finite() && rate > 0.0,
            "rate is validated before scheduling"
        );
        let period_ns = 1e9 / rate;
        let count_before = |d: Duration| (d.as_nanos() as f64 / period_ns).ceil() as u64;
        OpenLoopSchedule {
            t0_ns,
            period_ns,
            warmup_count: count_before(warmup),
            total: count_before(warmup + duration),
            end_ns: t0_ns + (warmup + duration).as_nanos() as u64,
        }
    }

    /// When a pacer still sending stops: [`LATE_SEND_NS`] after the window.
    pub fn cutoff_ns(&self) -> u64 {
        self.end_ns + LATE_SEND_NS
    }

    /// Measured requests from `i` on: those never sent when the pacer
    /// stops before request `i`.
    pub fn measured_from(&self, i: u64) -> u64 {
        self.total - i.clamp(self.warmup_count, self.total)
    }

    pub fn intended_ns(&self, i: u64) -> u64 {
        self.t0_ns + (i as f64 * self.period_ns).round() as u64
    }

    pub fn is_measured(&self, i: u64) -> bool {
        i >= self.warmup_count
    }

    /// Requests in the whole schedule, warm-up included.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn warmup_count(&self) -> u64 {
        self.warmup_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_are_evenly_spaced_from_t0() {
        let s = OpenLoopSchedule::new(1_000, 1000.0, Duration::ZERO, Duration::from_secs(1));
        assert_eq!(s.total(), 1000);
        assert_eq!(s.intended_ns(0), 1_000);
        assert_eq!(s.intended_ns(1), 1_001_000);
        assert_eq!(s.intended_ns(999), 1_000 + 999_000_000);
    }

    #[test]
    fn fractional_rates_do_not_drift() {
        let s = OpenLoopSchedule::new(0, 3.0, Duration::ZERO, Duration::from_secs(3000));
        assert_eq!(s.total(), 9000);
        // 8999 / 3 s, exact to the nanosecond despite the 333,333,333.3 ns period.
        assert_eq!(s.intended_ns(8999), 2_999_666_666_667);
    }

    #[test]
    fn a_pacer_behind_stops_after_the_window_and_counts_what_it_never_sent() {
        let s = OpenLoopSchedule::new(1_000, 100.0, Duration::from_millis(500), Duration::from_secs(2));
        assert_eq!(s.cutoff_ns(), 1_000 + 2_500_000_000 + LATE_SEND_NS);
        // The last request is due before the window closes, well before the cutoff.
        assert!(s.intended_ns(s.total() - 1) + LATE_SEND_NS < s.cutoff_ns());
        assert_eq!(
            s.measured_from(0),
            200,
            "stopped in the warm-up: nothing measured was sent"
        );
        assert_eq!(s.measured_from(60), 190);
        assert_eq!(s.measured_from(s.total()), 0);
    }

    #[test]
    fn warmup_requests_come_first_and_are_not_measured() {
        let s = OpenLoopSchedule::new(0, 100.0, Duration::from_millis(500), Duration::from_secs(2));
        assert_eq!(s.warmup_count(), 50);
        assert_eq!(s.total(), 250);
        assert!(!s.is_measured(49));
        assert!(s.is_measured(50));
        assert!(s.intended_ns(49) < 500_000_000 && s.intended_ns(50) >= 500_000_000);
    }
}
