//! The request/response workload: drives a [`RequestSink`] and a
//! [`ResponseSource`] open-loop (each request at its scheduled time, latency
//! from that time) or closed-loop (ping-pong at the maximum rate).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use transbench_wire::{MessageHeader, TrialToken};

use crate::clock::wall_at;
use crate::clock::{mono_now_ns, Pacer};
use crate::dataplane::failure::{failure_kind, reported_by_icmp};
use crate::dataplane::{ErrorLog, RequestSink, ResponseSource};
use crate::measure::delivery::{ResponseKind, RetryBook, RetryPolicy, SentFate};
use crate::measure::tracker::{RrTracker, TrackerTotals};
use crate::schedule::OpenLoopSchedule;
use crate::schedule::START_LEAD_NS;
use crate::spec::WindowOpens;

#[derive(Debug, Clone)]
pub struct RrPlan {
    /// Requests per second; `None` runs closed-loop.
    pub rate: Option<f64>,
    pub warmup: Duration,
    pub duration: Duration,
    pub loss_timeout: Duration,
    /// Keep every response for the UDP sequence tracker (open-loop).
    pub log_sequence: bool,
    /// Keep every measured request's round trip (open-loop).
    pub keep_samples: bool,
    /// The trial's, for every request's header.
    pub token: TrialToken,
    /// The trial's [`TrialSpec::window_opens`](crate::spec::TrialSpec).
    pub window_opens: WindowOpens,
    /// Open-loop, counting delivery: the retry policy (`none` too), and
    /// every request id's sends and responses kept for the accounting.
    pub retry: Option<RetryPolicy>,
}

/// What the sender sent and heard back of each request id, for the
/// delivery accounting.
pub struct SentLog {
    /// By id from 0, warm-up included.
    pub fates: Vec<SentFate>,
    /// The first measured id.
    pub first_measured: u64,
    /// Sends of any request, first sends and retries, warm-up included:
    /// what the receiver should have seen on a path that loses nothing.
    pub sends: u64,
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
    /// The same on the monotonic clock (the samples' and schedules' clock).
    pub measured_start_ns: u64,
    /// Length of the measured window actually run: shorter than planned
    /// when the data plane failed.
    pub measured_ns: u64,
    /// Measured requests never sent: the pacer fell so far behind that
    /// the window was over (see `schedule::LATE_SEND_NS`).
    pub unsent: u64,
    /// With [`RrPlan::retry`]: each id's sends and responses.
    pub sent_log: Option<SentLog>,
    /// With a [`Reconnect`]: what it did.
    pub reconnects: Option<Reconnects>,
}

/// A new data plane on a new session: the trial set up again on a
/// receiver that crashed and was started again, which knows nothing of
/// it; with the new session's token for every request.
pub type Redial<S, R> =
    Box<dyn FnMut() -> Pin<Box<dyn Future<Output = anyhow::Result<(S, R, TrialToken)>> + Send>> + Send>;

/// How the open loop reconnects after it lost its data plane's
/// connection (`--reconnect`).
pub struct Reconnect<S, R> {
    pub redial: Redial<S, R>,
    /// Between attempts.
    pub every: Duration,
}

/// What reconnecting did in a trial (the monotonic clock).
#[derive(Debug, Default)]
pub struct Reconnects {
    /// Connections lost, each redialed.
    pub lost: u64,
    /// Attempts that failed (nobody listening yet, a session refused).
    pub failed_attempts: u64,
    /// When each new data plane took over.
    pub up_ns: Vec<u64>,
    /// Measured requests due while the connection was down: counted sent
    /// and, never answered, lost.
    pub unsendable: u64,
    /// The token of the last new data plane, if one took over: the
    /// session the trial ended on.
    pub last_token: Option<TrialToken>,
}

/// Runs the trial; open-loop with `reconnect`, a lost connection is
/// redialed rather than the end of it.
pub async fn run<S: RequestSink, R: ResponseSource>(
    plan: RrPlan,
    sink: S,
    source: R,
    reconnect: Option<Reconnect<S, R>>,
) -> std::io::Result<RrOutcome> {
    match plan.rate {
        Some(rate) => open_loop(plan, rate, sink, source, reconnect).await,
        None => closed_loop(plan, sink, source).await,
    }
}

type Shared<T> = Arc<Mutex<T>>;

/// What became of one result of a [`ResponseSource`].
enum Handed {
    /// A response to request `seq`, handed to the tracker unless the
    /// retry book found it another send's answer.
    Answered(u64),
    /// An ICMP report on a source that carries on.
    Reported,
    /// An error that ends the source, logged.
    Ended,
}

/// Hands one received response to the tracker, or logs the error. With
/// `reconnecting`, a datagram refused (nobody listens there any more)
/// ends the source too, for the connection to be redialed.
fn hand_on<R: ResponseSource>(
    received: std::io::Result<(MessageHeader, u64)>,
    tracker: &Mutex<RrTracker>,
    book: Option<&Mutex<RetryBook>>,
    log: &Mutex<ErrorLog>,
    reconnecting: bool,
) -> Handed {
    match received {
        Ok((h, t)) => {
            let kind = book.map_or(ResponseKind::ForTracker, |b| {
                b.lock().expect("retry book lock").on_response(h.seq, h.attempt)
            });
            // Another send's answer to a request already answered is the
            // retry's doing: the round trip and the path's duplicates
            // leave it out.
            if kind == ResponseKind::ForTracker {
                tracker.lock().expect("tracker lock").on_response(h.seq, t);
            }
            Handed::Answered(h.seq)
        }
        Err(e) => {
            let at = mono_now_ns();
            let mut log = log.lock().expect("log lock");
            if reconnecting && ends_connection(&e) {
                log.note_lost_connection(&e, at);
                return Handed::Ended;
            }
            if !R::FATAL_ERRORS && reported_by_icmp(&e) {
                log.note_icmp(&e, at);
                return Handed::Reported;
            }
            log.note_at("receive", &e, at);
            Handed::Ended
        }
    }
}

/// The receive side of an open-loop trial: a task that hands every
/// response to the tracker while the pacer sends. Aborted when dropped,
/// so an abandoned trial leaves nothing running.
struct Receiving {
    task: tokio::task::JoinHandle<()>,
}

impl Receiving {
    fn spawn<R: ResponseSource>(
        mut source: R,
        tracker: Shared<RrTracker>,
        book: Option<Shared<RetryBook>>,
        log: Shared<ErrorLog>,
        reconnecting: bool,
    ) -> Self {
        let task = tokio::spawn(async move {
            loop {
                let received = source.recv().await;
                if let Handed::Ended = hand_on::<R>(received, &tracker, book.as_deref(), &log, reconnecting) {
                    return;
                }
            }
        });
        Receiving { task }
    }

    fn has_ended(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the task and waits until it has let go of the tracker.
    async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Receiving {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The shared value, once the receive task that shared it has ended.
fn unshare<T>(shared: Shared<T>) -> T {
    Arc::try_unwrap(shared)
        .ok()
        .expect("the receive task has ended")
        .into_inner()
        .expect("lock")
}

fn into_outcome(
    tracker: Shared<RrTracker>,
    log: Shared<ErrorLog>,
    requests_total: u64,
    pacer_busy_ns: u64,
    measured_start_ns: u64,
    measured_end_ns: u64,
    unsent: u64,
) -> RrOutcome {
    let tracker = unshare(tracker);
    let errors = std::mem::take(&mut *log.lock().expect("log lock"));
    RrOutcome {
        totals: tracker.finish(),
        errors,
        requests_total,
        pacer_busy_ns,
        measured_start: wall_at(measured_start_ns),
        measured_start_ns,
        measured_ns: measured_end_ns.saturating_sub(measured_start_ns),
        unsent,
        sent_log: None,
        reconnects: None,
    }
}

/// Sends every retry due by now; `Err` when a failed send ends the trial.
async fn send_due_retries<S: RequestSink>(
    book: &Shared<RetryBook>,
    sink: &mut S,
    token: TrialToken,
    log: &Shared<ErrorLog>,
) -> Result<(), ()> {
    let due = book.lock().expect("retry book lock").take_due(mono_now_ns());
    for r in due {
        let request = MessageHeader::request(token, 0, r.seq, r.intended_ns).retry(r.attempt);
        if let Err(e) = sink.send(request).await {
            if note_send_error::<S>(log, "send (retry)", &e) {
                return Err(());
            }
        }
    }
    Ok(())
}

/// Logs a failed send; true if it ends the trial. An ICMP report on a
/// sink whose errors are not fatal is the path's news, not a data-plane
/// error.
fn note_send_error<S: RequestSink>(log: &Shared<ErrorLog>, what: &str, e: &std::io::Error) -> bool {
    let at = mono_now_ns();
    let mut log = log.lock().expect("log lock");
    if !S::FATAL_ERRORS && reported_by_icmp(e) {
        log.note_icmp(e, at);
    } else {
        log.note_at(what, e, at);
    }
    S::FATAL_ERRORS
}

/// Whether `e` says the data plane's connection is gone, for a reconnect:
/// the peer closed or reset it, the kernel or quinn gave it up, or a
/// datagram was refused (a port unreachable: nobody listens there; host
/// unreachable is the path's, and the socket carries on). Anything else
/// (a malformed response) is a data-plane error as without reconnects.
fn ends_connection(e: &std::io::Error) -> bool {
    use transbench_analysis::recovery::ErrorKind;
    matches!(
        failure_kind(e),
        ErrorKind::ClosedByPeer
            | ErrorKind::ConnectionReset
            | ErrorKind::BrokenPipe
            | ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionTimedOut
            | ErrorKind::QuicIdleTimeout
            | ErrorKind::QuicClosed
    )
}

/// Redials until it has a new data plane, `reconnect.every` after each
/// failed attempt, while a request could still be sent (`until_ns`, the
/// monotonic clock); gives the reconnect back with what it got.
async fn redial_until<S: RequestSink, R: ResponseSource>(
    mut reconnect: Reconnect<S, R>,
    until_ns: u64,
    log: Shared<ErrorLog>,
    reconnects: Shared<Reconnects>,
) -> (Reconnect<S, R>, Option<(S, R, TrialToken)>) {
    loop {
        let left = Duration::from_nanos(until_ns.saturating_sub(mono_now_ns()));
        match tokio::time::timeout(left, (reconnect.redial)()).await {
            Ok(Ok(plane)) => return (reconnect, Some(plane)),
            Ok(Err(e)) => {
                reconnects.lock().expect("reconnects lock").failed_attempts += 1;
                tracing::debug!("reconnecting: {e:#}");
                if let Some(io) = e.chain().find_map(|c| c.downcast_ref::<std::io::Error>()) {
                    log.lock()
                        .expect("log lock")
                        .note_lost_connection(io, mono_now_ns());
                }
            }
            Err(_) => return (reconnect, None),
        }
        if mono_now_ns() + reconnect.every.as_nanos() as u64 >= until_ns {
            return (reconnect, None);
        }
        tokio::time::sleep(reconnect.every).await;
    }
}

/// When the next retry is due, if there is a book and a retry in it.
fn next_retry(book: Option<&Shared<RetryBook>>) -> Option<u64> {
    book.and_then(|b| b.lock().expect("retry book lock").next_due())
}

async fn open_loop<S: RequestSink, R: ResponseSource>(
    plan: RrPlan,
    rate: f64,
    sink: S,
    source: R,
    mut reconnect: Option<Reconnect<S, R>>,
) -> std::io::Result<RrOutcome> {
    let timeout_ns = plan.loss_timeout.as_nanos() as u64;
    let mut tracker = RrTracker::new(timeout_ns, true);
    if plan.log_sequence {
        tracker = tracker.log_sequence();
    }
    if plan.keep_samples {
        tracker = tracker.keep_samples();
    }
    let tracker = Arc::new(Mutex::new(tracker));
    let book = plan
        .retry
        .map(|policy| Arc::new(Mutex::new(RetryBook::new(policy, timeout_ns))));
    let log = Arc::new(Mutex::new(ErrorLog::default()));
    let mut pacer = Pacer::new()?;
    let reconnecting = reconnect.is_some();
    let receive =
        |source: R| Receiving::spawn(source, tracker.clone(), book.clone(), log.clone(), reconnecting);
    let mut receiving = receive(source);
    // `None` while the connection is lost and being redialed: requests
    // due then fail, and count lost.
    let mut sink = Some(sink);
    let mut token = plan.token;
    let mut redialing = None;
    let reconnects = Arc::new(Mutex::new(Reconnects::default()));

    let t0 = mono_now_ns() + START_LEAD_NS;
    let schedule = OpenLoopSchedule::new(t0, rate, plan.warmup, plan.duration);
    let measured_start = schedule.intended_ns(schedule.warmup_count());
    plan.window_opens.tell(measured_start);
    let planned_end = measured_start + plan.duration.as_nanos() as u64;
    let cutoff = schedule.cutoff_ns();
    let mut requests_total = 0;
    let mut cut_short = false;
    let mut unsent = 0;
    'schedule: for i in 0..schedule.total() {
        let intended = schedule.intended_ns(i);
        // Retries due before this request go out at their own times.
        while let Some(due) = next_retry(book.as_ref()).filter(|&due| due < intended) {
            pacer.wait_until(due).await?;
            let book = book.as_ref().expect("a retry is due");
            let Some(sink) = sink.as_mut() else { break };
            if send_due_retries(book, sink, token, &log).await.is_err() {
                cut_short = true;
                break 'schedule;
            }
        }
        pacer.wait_until(intended).await?;
        let actual = mono_now_ns();
        // So far behind that the window is over: the rest are never sent.
        if actual >= cutoff {
            unsent = schedule.measured_from(i);
            break;
        }
        // A new data plane takes over from here.
        if redialing
            .as_ref()
            .is_some_and(|r: &tokio::task::JoinHandle<_>| r.is_finished())
        {
            let task = redialing.take().expect("a redial");
            let (back, plane) = task.await.map_err(std::io::Error::other)?;
            reconnect = Some(back);
            if let Some((new_sink, source, new_token)) = plane {
                // The old task may still read a connection the sink found broken.
                std::mem::replace(&mut receiving, receive(source)).stop().await;
                sink = Some(new_sink);
                token = new_token;
                let mut r = reconnects.lock().expect("reconnects lock");
                r.up_ns.push(mono_now_ns());
                r.last_token = Some(new_token);
            }
        }
        {
            let mut t = tracker.lock().expect("tracker lock");
            t.expire(actual);
            match sink {
                Some(_) => t.on_sent(i, intended, actual, schedule.is_measured(i)),
                None => {
                    t.on_unsendable(i, intended, schedule.is_measured(i));
                    if schedule.is_measured(i) {
                        reconnects.lock().expect("reconnects lock").unsendable += 1;
                    }
                }
            }
        }
        if let Some(book) = &book {
            book.lock().expect("retry book lock").on_sent(i, intended);
        }
        requests_total += 1;
        let Some(connected) = sink.as_mut() else {
            continue;
        };
        let mut lost = receiving.has_ended();
        if let Err(e) = connected
            .send(MessageHeader::request(token, 0, i, intended))
            .await
        {
            if reconnecting && ends_connection(&e) {
                log.lock()
                    .expect("log lock")
                    .note_lost_connection(&e, mono_now_ns());
                lost = true;
            } else if note_send_error::<S>(&log, "send", &e) {
                cut_short = true;
                break;
            }
        }
        // Nobody is listening for answers any more: stop sending, or
        // redial.
        if lost || receiving.has_ended() {
            match reconnect.take() {
                Some(r) => {
                    sink = None;
                    reconnects.lock().expect("reconnects lock").lost += 1;
                    redialing = Some(tokio::spawn(redial_until(
                        r,
                        cutoff,
                        log.clone(),
                        reconnects.clone(),
                    )));
                }
                None => {
                    cut_short = true;
                    break;
                }
            }
        }
    }
    if let Some(task) = redialing.take() {
        task.abort();
    }
    let measured_end = if cut_short {
        mono_now_ns().clamp(measured_start, planned_end)
    } else {
        planned_end
    };

    // Wait for the last answers, at most one loss timeout past the
    // cutoff: the trial ends on time however far behind it fell.
    let deadline = mono_now_ns().min(cutoff) + timeout_ns;
    loop {
        let now = mono_now_ns();
        {
            let mut t = tracker.lock().expect("tracker lock");
            t.expire(now);
            if t.outstanding() == 0 {
                break;
            }
        }
        if now >= deadline || receiving.has_ended() {
            break;
        }
        // The last requests' retries fall due here too.
        if let (Some(book), Some(sink)) = (&book, sink.as_mut()) {
            if send_due_retries(book, sink, token, &log).await.is_err() {
                break;
            }
        }
        let wake = next_retry(book.as_ref()).map_or(now + 1_000_000, |due| due.clamp(now, now + 1_000_000));
        tokio::time::sleep(Duration::from_nanos(wake - now)).await;
    }
    receiving.stop().await;
    let mut outcome = into_outcome(
        tracker,
        log,
        requests_total,
        pacer.busy_ns(),
        measured_start,
        measured_end,
        unsent,
    );
    outcome.reconnects =
        reconnecting.then(|| std::mem::take(&mut *reconnects.lock().expect("reconnects lock")));
    outcome.sent_log = book.map(|book| {
        let book = unshare(book);
        SentLog {
            sends: requests_total + book.retries_sent(),
            fates: book.finish(),
            first_measured: schedule.warmup_count(),
        }
    });
    Ok(outcome)
}

/// A source's next result, with the source itself: a receive that
/// owns its source can wait across the closed loop's rounds, and a
/// response cut off by a round's timeout is not lost half read.
async fn receive_owned<R: ResponseSource>(mut source: R) -> (R, std::io::Result<(MessageHeader, u64)>) {
    let received = source.recv().await;
    (source, received)
}

/// One request at a time, each sent when the one before was answered or
/// timed out. The loop receives in its own task: an answer wakes the code
/// that sends the next request, with no task between them.
async fn closed_loop<S: RequestSink, R: ResponseSource>(
    plan: RrPlan,
    mut sink: S,
    source: R,
) -> std::io::Result<RrOutcome> {
    let timeout_ns = plan.loss_timeout.as_nanos() as u64;
    let tracker = Arc::new(Mutex::new(RrTracker::new(timeout_ns, false)));
    let log = Arc::new(Mutex::new(ErrorLog::default()));
    let mut receiving = Box::pin(receive_owned(source));
    // One timer, pushed later each round: extending a deadline leaves
    // tokio's timer wheel alone, where a timeout per round would register
    // and cancel an entry in it every time.
    let answer_timer = tokio::time::sleep(plan.loss_timeout);
    tokio::pin!(answer_timer);
    let start = mono_now_ns();
    let warm_end = start + plan.warmup.as_nanos() as u64;
    plan.window_opens.tell(warm_end);
    let end = warm_end + plan.duration.as_nanos() as u64;

    let mut seq = 0u64;
    let mut measured_end = end;
    'trial: loop {
        let t_send = mono_now_ns();
        if t_send >= end {
            break;
        }
        // Where the window ends if this round is the last.
        measured_end = t_send.max(warm_end);
        let sent = sink
            .send(MessageHeader::request(plan.token, 0, seq, t_send))
            .await;
        // Kept after the hand-over: the tracker's own work is no part of
        // the round trip.
        tracker
            .lock()
            .expect("tracker lock")
            .on_sent(seq, t_send, t_send, t_send >= warm_end);
        seq += 1;
        if let Err(e) = sent {
            if note_send_error::<S>(&log, "send", &e) {
                break 'trial;
            }
            continue;
        }
        // Wait for this request's answer, at most its loss timeout; then
        // move on and let the tracker declare it lost (and count a late
        // answer as late).
        let answer_by = t_send + timeout_ns;
        let wait = Duration::from_nanos(answer_by.saturating_sub(mono_now_ns()));
        answer_timer.as_mut().reset(tokio::time::Instant::now() + wait);
        loop {
            let (source, received) = tokio::select! {
                biased;
                () = answer_timer.as_mut() => break,
                received = receiving.as_mut() => received,
            };
            receiving.set(receive_owned(source));
            match hand_on::<R>(received, &tracker, None, &log, false) {
                Handed::Answered(s) if s == seq - 1 => break,
                Handed::Ended => break 'trial,
                // Another request's answer, or an ICMP report. The clock,
                // not only the timer: a source that stays ready (a run of
                // stray datagrams) may never let the timer fire.
                Handed::Answered(_) | Handed::Reported if mono_now_ns() >= answer_by => break,
                Handed::Answered(_) | Handed::Reported => continue,
            }
        }
        tracker.lock().expect("tracker lock").expire(mono_now_ns());
        measured_end = end;
    }
    drop(receiving);
    Ok(into_outcome(tracker, log, seq, 0, warm_end, measured_end, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use tokio::sync::mpsc;

    /// A transport in memory that answers every request at once; each send
    /// costs `cost` of the sending thread (a slow transport, or a loaded
    /// machine).
    struct Memory {
        answers: mpsc::UnboundedSender<MessageHeader>,
        cost: Duration,
        /// Loses the responses to every request's first send (a one-way
        /// partition of the first answers).
        lose_first_answers: bool,
    }

    struct Answers(mpsc::UnboundedReceiver<MessageHeader>);

    /// A trial of `duration_ms` with no warm-up, at `rate` (closed loop
    /// without), a request lost after `loss_timeout_ms`.
    fn plan(rate: Option<f64>, duration_ms: u64, loss_timeout_ms: u64) -> RrPlan {
        RrPlan {
            rate,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(duration_ms),
            loss_timeout: Duration::from_millis(loss_timeout_ms),
            log_sequence: false,
            keep_samples: false,
            token: TrialToken::from_bytes(*b"trial-42"),
            window_opens: WindowOpens::default(),
            retry: None,
        }
    }

    impl RequestSink for Memory {
        const FATAL_ERRORS: bool = true;

        async fn send(&mut self, header: MessageHeader) -> io::Result<()> {
            // Blocking on purpose: the cost is the pacer's own thread's.
            std::thread::sleep(self.cost);
            if !(self.lose_first_answers && header.attempt == 0) {
                let _ = self.answers.send(header);
            }
            Ok(())
        }
    }

    impl ResponseSource for Answers {
        async fn recv(&mut self) -> io::Result<(MessageHeader, u64)> {
            let h = self.0.recv().await.ok_or(io::ErrorKind::UnexpectedEof)?;
            Ok((h.response(), mono_now_ns()))
        }
    }

    /// A datagram socket's answers, the first receive an ICMP report.
    struct ReportsFirst {
        answers: Answers,
        reported: bool,
    }

    impl ResponseSource for ReportsFirst {
        const FATAL_ERRORS: bool = false;

        async fn recv(&mut self) -> io::Result<(MessageHeader, u64)> {
            if !std::mem::replace(&mut self.reported, true) {
                return Err(io::Error::from_raw_os_error(libc::EHOSTUNREACH));
            }
            self.answers.recv().await
        }
    }

    #[tokio::test]
    async fn an_icmp_report_is_kept_with_its_time_and_the_datagram_source_works_on() {
        let (tx, rx) = mpsc::unbounded_channel();
        let plan = plan(Some(1000.0), 100, 200);
        let memory = Memory {
            answers: tx,
            cost: Duration::ZERO,
            lose_first_answers: false,
        };
        let source = ReportsFirst {
            answers: Answers(rx),
            reported: false,
        };
        let before = mono_now_ns();
        let o = run(plan, memory, source, None).await.unwrap();
        assert_eq!(o.totals.counters.received, 100, "every answer after the report");
        assert_eq!((o.errors.count, o.errors.icmp_reports), (0, 1));
        let [seen] = &o.errors.failures[..] else {
            panic!("{:?}", o.errors.failures)
        };
        assert_eq!(
            seen.kind,
            transbench_analysis::recovery::ErrorKind::HostUnreachable
        );
        assert!(seen.at_ns >= before);
    }

    /// Always ready, never with an answer to anything sent: a flood of
    /// stray datagrams.
    struct Strays;

    impl ResponseSource for Strays {
        async fn recv(&mut self) -> io::Result<(MessageHeader, u64)> {
            let stray = MessageHeader::request(TrialToken::from_bytes(*b"trial-42"), 0, u64::MAX, 0);
            Ok((stray.response(), mono_now_ns()))
        }
    }

    #[test]
    fn a_closed_loop_round_ends_at_its_timeout_while_strays_keep_its_source_ready() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let plan = plan(None, 100, 20);
        let memory = Memory {
            answers: tx,
            cost: Duration::ZERO,
            lose_first_answers: false,
        };
        // On a thread of its own: a loop that never yields would hang a
        // runtime's own timeout too.
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _ = done.send(
                rt.block_on(run(plan, memory, Strays, None))
                    .map(|o| o.totals.counters),
            );
        });
        let c = outcome
            .recv_timeout(Duration::from_secs(60))
            .expect("the trial ended")
            .unwrap();
        // 100 ms of rounds of at least 20 ms: at most 5 (fewer if the
        // machine is busy); every one lost, none answered.
        assert!((1..=5).contains(&c.sent), "{c:?}");
        assert_eq!((c.received, c.lost), (0, c.sent), "{c:?}");
    }

    async fn run_with(rate: f64, duration_ms: u64, cost: Duration) -> (RrOutcome, Duration) {
        run_plan(rate, duration_ms, cost, None).await
    }

    async fn run_plan(
        rate: f64,
        duration_ms: u64,
        cost: Duration,
        retry: Option<RetryPolicy>,
    ) -> (RrOutcome, Duration) {
        let (tx, rx) = mpsc::unbounded_channel();
        let plan = RrPlan {
            retry,
            ..plan(Some(rate), duration_ms, 200)
        };
        let start = std::time::Instant::now();
        let memory = Memory {
            answers: tx,
            cost,
            lose_first_answers: retry.is_some(),
        };
        let outcome = run(plan, memory, Answers(rx), None).await.unwrap();
        (outcome, start.elapsed())
    }

    #[tokio::test]
    async fn a_schedule_kept_sends_everything_and_ends_with_its_window() {
        let (o, _) = run_with(1000.0, 200, Duration::ZERO).await;
        let c = &o.totals.counters;
        assert_eq!((c.sent, c.received, o.unsent), (200, 200, 0));
        assert_eq!(o.measured_ns, 200_000_000);
    }

    #[tokio::test]
    async fn a_retry_answers_what_the_first_send_could_not_and_latency_counts_from_the_first() {
        let policy = RetryPolicy::Timeout {
            timeout: Duration::from_millis(20),
            max_retries: 2,
        };
        let (o, _) = run_plan(1000.0, 100, Duration::ZERO, Some(policy)).await;
        let c = &o.totals.counters;
        assert_eq!((c.sent, c.received, c.lost, c.duplicates), (100, 100, 0, 0));
        let sent = o.sent_log.expect("a retry policy keeps the sent log");
        assert_eq!(sent.first_measured, 0);
        assert_eq!(sent.fates.len(), 100);
        // Each request's first retry is answered at once: no second one.
        assert!(sent
            .fates
            .iter()
            .all(|f| f.retries == 1 && f.responses_to_retries() == 1));
        assert_eq!(sent.sends, 200);
        // Answered by a retry due 20 ms after the intended time: the
        // round trip counts from the intended time, not the retry's.
        assert!(o.totals.lat.min() >= 19_000_000, "{}", o.totals.lat.min());
    }

    #[tokio::test]
    async fn a_sender_behind_stops_after_the_window_and_counts_what_it_never_sent() {
        // 3000 requests due in 300 ms, each taking 1 ms to send: without
        // the cutoff, 3 s.
        let (o, took) = run_with(10_000.0, 300, Duration::from_millis(1)).await;
        let c = &o.totals.counters;
        assert!(o.unsent > 0 && c.sent > 0, "sent {}, unsent {}", c.sent, o.unsent);
        assert_eq!(c.sent + o.unsent, 3000, "every request sent or counted unsent");
        assert_eq!(c.sent, c.received + c.lost);
        assert_eq!(o.measured_ns, 300_000_000, "the window ran in full");
        // Window, late sends, loss timeout, and some room for a loaded machine.
        let bound = Duration::from_millis(300 + crate::schedule::LATE_SEND_NS / 1_000_000 + 200 + 500);
        assert!(took < bound, "took {took:?}, more than {bound:?}");
    }

    /// A connection in memory that breaks (a reset) after `breaks_after`
    /// sends, and answers only requests with its session's token.
    struct Session {
        answers: mpsc::UnboundedSender<MessageHeader>,
        token: TrialToken,
        breaks_after: u64,
    }

    impl RequestSink for Session {
        const FATAL_ERRORS: bool = true;

        async fn send(&mut self, header: MessageHeader) -> io::Result<()> {
            if self.breaks_after == 0 {
                return Err(io::ErrorKind::ConnectionReset.into());
            }
            self.breaks_after -= 1;
            if header.token != self.token {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "another session's token",
                ));
            }
            let _ = self.answers.send(header);
            Ok(())
        }
    }

    fn session(token: TrialToken, breaks_after: u64) -> (Session, Answers) {
        let (answers, rx) = mpsc::unbounded_channel();
        let s = Session {
            answers,
            token,
            breaks_after,
        };
        (s, Answers(rx))
    }

    /// 1000 requests/s for 300 ms; the connection breaks at the 100th
    /// send, the redial every 20 ms is refused twice and then gets a
    /// session with a new token. Nothing is counted an error; the requests
    /// due while it was down (some 40: from the break to the third
    /// attempt, later on a busy machine) are lost, the rest answered.
    #[tokio::test]
    async fn a_lost_connection_is_redialed_and_the_new_session_answers() {
        let first = TrialToken::from_bytes(*b"session1");
        let second = TrialToken::from_bytes(*b"session2");
        let plan = RrPlan {
            token: first,
            ..plan(Some(1000.0), 300, 200)
        };
        let mut attempts = 0;
        let redial: Redial<Session, Answers> = Box::new(move || {
            attempts += 1;
            let n = attempts;
            Box::pin(async move {
                if n <= 2 {
                    return Err(
                        anyhow::Error::new(io::Error::from(io::ErrorKind::ConnectionRefused))
                            .context("connecting to the receiver"),
                    );
                }
                let (sink, source) = session(second, u64::MAX);
                Ok((sink, source, second))
            })
        });
        let reconnect = Reconnect {
            redial,
            every: Duration::from_millis(20),
        };
        let (sink, source) = session(first, 100);
        let o = run(plan, sink, source, Some(reconnect)).await.unwrap();
        let r = o.reconnects.as_ref().expect("reconnects recorded");
        assert_eq!((r.lost, r.failed_attempts, r.up_ns.len()), (1, 2, 1), "{r:?}");
        assert_eq!(r.last_token, Some(second), "the trial ends on the new session");
        let c = &o.totals.counters;
        assert_eq!(c.sent, 300, "every request offered");
        assert_eq!(o.errors.count, 0, "{:?}", o.errors.messages);
        assert!((39..150).contains(&c.lost), "lost {} while down", c.lost);
        assert_eq!(
            r.unsendable + 1,
            c.lost,
            "lost: the request whose send found the connection broken, and those due while it was down"
        );
        assert_eq!(c.received + c.lost, 300, "answered on one session or the other");
        use transbench_analysis::recovery::ErrorKind;
        let kinds: Vec<ErrorKind> = o.errors.failures.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds.first(),
            Some(&ErrorKind::ConnectionReset),
            "the break, then the refusals: {kinds:?}"
        );
        assert!(kinds.contains(&ErrorKind::ConnectionRefused), "{kinds:?}");
        assert_eq!(o.measured_ns, 300_000_000, "the window ran in full");
    }
}
