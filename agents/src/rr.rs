//! The request/response workload: drives a [`RequestSink`] and a
//! [`ResponseSource`] open-loop (each request at its scheduled time, latency
//! from that time) or closed-loop (ping-pong at the maximum rate).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use transbench_wire::MessageHeader;

use crate::clock::{mono_now_ns, Pacer};
use crate::dataplane::{ErrorLog, RequestSink, ResponseSource};
use crate::schedule::OpenLoopSchedule;
use crate::tracker::{RrTracker, TrackerTotals};

#[derive(Debug, Clone, Copy)]
pub struct RrPlan {
    /// Requests per second; `None` runs closed-loop.
    pub rate: Option<f64>,
    pub warmup: Duration,
    pub duration: Duration,
    pub loss_timeout: Duration,
}

pub struct RrOutcome {
    pub totals: TrackerTotals,
    /// Data-plane errors seen by the engine.
    pub errors: ErrorLog,
    /// Requests handed to the transport, warm-up included.
    pub requests_total: u64,
    /// Wall time the pacer spent busy-waiting for intended send times.
    pub pacer_busy_ns: u64,
    /// Wall-clock start of the measured window.
    pub measured_start: SystemTime,
}

/// Lead time between scheduling and the first request.
const START_LEAD_NS: u64 = 5_000_000;

fn wall_at(mono_ns: u64) -> SystemTime {
    let (wall, now) = (SystemTime::now(), mono_now_ns());
    if mono_ns >= now {
        wall + Duration::from_nanos(mono_ns - now)
    } else {
        wall - Duration::from_nanos(now - mono_ns)
    }
}

pub async fn run<S: RequestSink, R: ResponseSource>(
    plan: RrPlan,
    sink: S,
    source: R,
) -> std::io::Result<RrOutcome> {
    match plan.rate {
        Some(rate) => open_loop(plan, rate, sink, source).await,
        None => closed_loop(plan, sink, source).await,
    }
}

async fn open_loop<S: RequestSink, R: ResponseSource>(
    plan: RrPlan,
    rate: f64,
    mut sink: S,
    mut source: R,
) -> std::io::Result<RrOutcome> {
    let timeout_ns = plan.loss_timeout.as_nanos() as u64;
    let tracker = Arc::new(Mutex::new(RrTracker::new(timeout_ns, true)));
    let log = Arc::new(Mutex::new(ErrorLog::default()));
    let mut pacer = Pacer::new()?;

    let receiving = {
        let (tracker, log) = (tracker.clone(), log.clone());
        tokio::spawn(async move {
            loop {
                match source.recv().await {
                    Ok((h, t)) => {
                        tracker.lock().expect("tracker lock").on_response(h.seq, t);
                    }
                    Err(e) => {
                        log.lock().expect("log lock").note("receive", &e);
                        return;
                    }
                }
            }
        })
    };

    let t0 = mono_now_ns() + START_LEAD_NS;
    let schedule = OpenLoopSchedule::new(t0, rate, plan.warmup, plan.duration);
    let measured_start = wall_at(schedule.intended_ns(schedule.warmup_count()));
    let mut requests_total = 0;
    for i in 0..schedule.total() {
        let intended = schedule.intended_ns(i);
        pacer.wait_until(intended).await?;
        let actual = mono_now_ns();
        {
            let mut t = tracker.lock().expect("tracker lock");
            t.expire(actual);
            t.on_sent(i, intended, actual, schedule.is_measured(i));
        }
        requests_total += 1;
        if let Err(e) = sink.send(MessageHeader::request(0, i, intended)).await {
            log.lock().expect("log lock").note("send", &e);
            if S::FATAL_ERRORS {
                break;
            }
        }
        if receiving.is_finished() && !R::CANCEL_SAFE {
            break;
        }
    }

    // Wait for the last answers, at most one loss timeout.
    let deadline = mono_now_ns() + timeout_ns;
    loop {
        let now = mono_now_ns();
        {
            let mut t = tracker.lock().expect("tracker lock");
            t.expire(now);
            if t.outstanding() == 0 {
                break;
            }
        }
        if now >= deadline || receiving.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    receiving.abort();
    let _ = receiving.await;

    let tracker = Arc::try_unwrap(tracker)
        .ok()
        .expect("the receive task has ended")
        .into_inner()
        .expect("tracker lock");
    let log = std::mem::take(&mut *log.lock().expect("log lock"));
    Ok(RrOutcome {
        totals: tracker.finish(),
        errors: log,
        requests_total,
        pacer_busy_ns: pacer.busy_ns(),
        measured_start,
    })
}

async fn closed_loop<S: RequestSink, R: ResponseSource>(
    plan: RrPlan,
    mut sink: S,
    mut source: R,
) -> std::io::Result<RrOutcome> {
    let timeout_ns = plan.loss_timeout.as_nanos() as u64;
    let mut tracker = RrTracker::new(timeout_ns, false);
    let mut log = ErrorLog::default();
    let start = mono_now_ns();
    let warm_end = start + plan.warmup.as_nanos() as u64;
    let end = warm_end + plan.duration.as_nanos() as u64;
    let measured_start = wall_at(warm_end);

    let mut seq = 0u64;
    'trial: loop {
        let t_send = mono_now_ns();
        if t_send >= end {
            break;
        }
        tracker.on_sent(seq, t_send, t_send, t_send >= warm_end);
        if let Err(e) = sink.send(MessageHeader::request(0, seq, t_send)).await {
            log.note("send", &e);
            if S::FATAL_ERRORS {
                break;
            }
        }
        let answer_by = t_send + timeout_ns;
        loop {
            let now = mono_now_ns();
            if now >= answer_by {
                break;
            }
            match tokio::time::timeout(Duration::from_nanos(answer_by - now), source.recv()).await {
                Ok(Ok((h, t))) => {
                    tracker.on_response(h.seq, t);
                    if h.seq == seq {
                        break;
                    }
                }
                Ok(Err(e)) => {
                    log.note("receive", &e);
                    break 'trial;
                }
                // A byte stream abandoned mid-frame cannot be resumed.
                Err(_) if !R::CANCEL_SAFE => break 'trial,
                Err(_) => break,
            }
        }
        tracker.expire(mono_now_ns());
        seq += 1;
    }
    Ok(RrOutcome {
        totals: tracker.finish(),
        errors: log,
        requests_total: seq,
        pacer_busy_ns: 0,
        measured_start,
    })
}
