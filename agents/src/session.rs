//! The sender's side of a control session: connect and authenticate,
//! set a trial up, run its data plane while the receiver stays quiet,
//! collect what the receiver recorded, and the rules that make a trial
//! invalid. Every workload runs its trial through these. Between trials,
//! the receiver's clock can be estimated against this host's.

use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use transbench_analysis::clock_offset::{Exchange, OffsetEstimate};
use transbench_reports::{Counters, LatencySummary};
use transbench_wire::auth::{from_hex, random_nonce, to_hex, FrameMac, Role, Secret, NONCE_LEN};
use transbench_wire::control::{MAGIC, PROTOCOL_VERSION};
use transbench_wire::delivery;
use transbench_wire::processed::{self, IdCounts};
use transbench_wire::{
    printable, ControlMsg, ReceiverReport, TimeWaitSample, TrialSetup, TrialToken, Workload,
};

use crate::clock::mono_now_ns;
use crate::control_io::{ControlChannel, ControlIoError};
use crate::dataplane::ErrorLog;
use crate::schedule;
use crate::spec::TrialSpec;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Clock probes in one estimate: enough that some cross both ways with no
/// queue, few enough to take some 70 ms (tokio's timer rounds each
/// spacing up to the next millisecond tick: about 2 ms a probe).
pub const CLOCK_PROBES: u32 = 32;

/// Between clock probes: spread over tens of milliseconds, a burst on the
/// path or a busy moment on either host delays a few of them, not all.
const CLOCK_PROBE_SPACING: Duration = Duration::from_millis(1);

/// A trial whose send lag p99 exceeds this could not keep its schedule
/// (unless `--max-send-lag` says otherwise).
pub const MAX_SEND_LAG_P99_NS: u64 = 1_000_000;

/// Resolves `HOST:PORT` (a name or an address), given as `what` (a flag,
/// or what it names) in errors.
pub async fn resolve(what: &str, given: &str) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host(given)
        .await
        .with_context(|| format!("cannot resolve {what} {given:?}: expected HOST:PORT"))?
        .next()
        .with_context(|| format!("{what} {given:?} resolves to no address"))
}

pub async fn expect_reply(ctl: &mut ControlChannel, what: &str) -> anyhow::Result<ControlMsg> {
    Ok(expect_reply_timed(ctl, what).await?.0)
}

/// [`expect_reply`], and when its frame was read ([`ControlChannel::recv_timed`]).
async fn expect_reply_timed(ctl: &mut ControlChannel, what: &str) -> anyhow::Result<(ControlMsg, u64)> {
    let (msg, read_ns) = tokio::time::timeout(REPLY_TIMEOUT, ctl.recv_timed())
        .await
        .with_context(|| format!("receiver did not answer within {REPLY_TIMEOUT:?} (waiting for {what})"))?
        .with_context(|| format!("waiting for {what}"))?;
    if let ControlMsg::Refused { reason } = &msg {
        bail!("receiver refused: {}", printable(reason));
    }
    Ok((msg, read_ns))
}

/// Opens an authenticated control session; returns it with the receiver's
/// kernel boot id.
pub async fn connect(
    addr: SocketAddr,
    secret: Option<&Secret>,
) -> anyhow::Result<(ControlChannel, Option<String>)> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .with_context(|| format!("connecting to the receiver at {addr} timed out"))?
        .with_context(|| {
            format!("cannot connect to the receiver at {addr}: is `transbench receiver` running there?")
        })?;
    let mut ctl = ControlChannel::new(stream);
    let client_nonce = random_nonce();
    ctl.send(&ControlMsg::Hello {
        magic: MAGIC.into(),
        version: PROTOCOL_VERSION,
        client_nonce: to_hex(&client_nonce),
    })
    .await?;
    let ControlMsg::Challenge {
        server_nonce,
        auth_required,
    } = expect_reply(&mut ctl, "the challenge").await?
    else {
        bail!("receiver at {addr} broke the protocol: expected a challenge");
    };
    let server_nonce = from_hex(&server_nonce)
        .filter(|n| n.len() == NONCE_LEN)
        .context("receiver sent a malformed nonce")?;
    let client_proof = match (secret, auth_required) {
        (None, false) => None,
        (None, true) => bail!(
            "receiver at {addr} requires a shared secret: pass --secret-file FILE (or set TRANSBENCH_SECRET)"
        ),
        (Some(_), false) => bail!(
            "receiver at {addr} has no secret configured, so it cannot prove who it is; \
             start it with the same --secret-file, or drop the secret on this side"
        ),
        (Some(s), true) => Some(s.prove(Role::Sender, &client_nonce, &server_nonce)),
    };
    ctl.send(&ControlMsg::Auth { client_proof }).await?;
    let ControlMsg::Welcome {
        server_proof,
        boot_id,
        ..
    } = expect_reply(&mut ctl, "the welcome").await?
    else {
        bail!("receiver at {addr} broke the protocol: expected welcome");
    };
    if let Some(s) = secret {
        let proof = server_proof.context("receiver sent no proof of the secret")?;
        s.verify(Role::Receiver, &client_nonce, &server_nonce, &proof)
            .map_err(|_| {
                anyhow::anyhow!("authentication failed: receiver at {addr} holds a different secret")
            })?;
        ctl.authenticate(FrameMac::new(s, Role::Sender, &client_nonce, &server_nonce));
    }
    Ok((ctl, boot_id))
}

/// The receiver's clock against this host's, from `exchanges` probes sent
/// one at a time, between trials. An estimate whose exchanges contradict
/// each other fails with the [`ClockOffsetError`] inside.
///
/// [`ClockOffsetError`]: transbench_analysis::clock_offset::ClockOffsetError
pub async fn estimate_clock_offset(
    ctl: &mut ControlChannel,
    exchanges: u32,
) -> anyhow::Result<OffsetEstimate> {
    let mut batch = Vec::with_capacity(exchanges as usize);
    for i in 0..exchanges {
        if i > 0 {
            tokio::time::sleep(CLOCK_PROBE_SPACING).await;
        }
        let t1 = mono_now_ns();
        ctl.send(&ControlMsg::ClockProbe { t1 }).await?;
        let (echo, t4) = expect_reply_timed(ctl, "a clock echo").await?;
        match echo {
            ControlMsg::ClockEcho { t1: echoed, t2, t3 } if echoed == t1 => {
                batch.push(Exchange { t1, t2, t3, t4 })
            }
            ControlMsg::ClockEcho { .. } => {
                bail!("receiver broke the protocol: it echoed another clock probe")
            }
            other => bail!(
                "receiver broke the protocol: expected a clock echo, got {}",
                other.name()
            ),
        }
    }
    OffsetEstimate::from_exchanges(&batch).context("estimating the receiver's clock offset")
}

/// What the receiver's `Ready` grants a trial's data plane.
pub struct Admitted {
    pub data_port: u16,
    /// The certificate fingerprint to pin, for transports inside TLS.
    pub cert: Option<String>,
    /// What every data message, connection and QUIC handshake shows.
    pub token: TrialToken,
}

pub async fn setup(ctl: &mut ControlChannel, setup: TrialSetup) -> anyhow::Result<Admitted> {
    ctl.send(&ControlMsg::Setup(setup)).await?;
    match expect_reply(ctl, "ready").await? {
        ControlMsg::Ready {
            data_port,
            cert_sha256,
            token,
        } => Ok(Admitted {
            data_port,
            cert: cert_sha256,
            token,
        }),
        other => bail!(
            "receiver broke the protocol: expected ready, got {}",
            other.name()
        ),
    }
}

/// What the receiver sent back after Stop.
pub struct Collected {
    pub deliveries: Vec<delivery::Delivery>,
    pub time_wait: Vec<TimeWaitSample>,
    /// rr counting delivery: each request id's arrivals and processings,
    /// by id from 0.
    pub processed: Vec<IdCounts>,
    /// Bulk: each flow's bytes per bin.
    pub flows: Vec<Vec<u64>>,
    pub report: ReceiverReport,
}

/// After Stop: what the receiver sends back before its report (one-way
/// deliveries, churn's TIME_WAIT samples, bulk's bins), and the report.
/// The first frame may take `drain` longer while the receiver waits for
/// stragglers.
pub async fn collect(ctl: &mut ControlChannel, drain: Duration) -> anyhow::Result<Collected> {
    let mut deliveries = Vec::new();
    let mut samples = Vec::new();
    let mut flows: Vec<Vec<u64>> = Vec::new();
    let mut processed: Vec<IdCounts> = Vec::new();
    let mut within = drain + REPLY_TIMEOUT;
    loop {
        let reply = tokio::time::timeout(within, expect_reply(ctl, "the receiver's records and report"))
            .await
            .with_context(|| format!("receiver sent no report within {within:?} of the trial's end"))?;
        within = REPLY_TIMEOUT;
        match reply.context("lost the receiver before its report; no result written")? {
            ControlMsg::Deliveries { records } => deliveries
                .extend(delivery::decode(&records).context("receiver sent malformed delivery records")?),
            ControlMsg::TimeWait { samples: batch } => samples.extend(batch),
            ControlMsg::FlowBins { flow, first, bins } => {
                // A flow index is the receiver's to name, within the trial's flows.
                let (flow, first) = (flow as usize, first as usize);
                if flow >= crate::spec::bulk::MAX_FLOWS as usize
                    || first.saturating_add(bins.len()) > crate::workload::bulk::MAX_BINS
                {
                    bail!(
                        "receiver broke the protocol: bins {first}.. of flow {flow} are beyond any trial's"
                    );
                }
                if flows.len() <= flow {
                    flows.resize(flow + 1, Vec::new());
                }
                let into = &mut flows[flow];
                if into.len() < first + bins.len() {
                    into.resize(first + bins.len(), 0);
                }
                into[first..first + bins.len()].copy_from_slice(&bins);
            }
            ControlMsg::Processed { first, counts } => {
                let counts =
                    processed::decode(&counts).context("receiver sent malformed processed counts")?;
                // Ids are the sender's, within what one trial schedules.
                let most = crate::spec::MAX_MESSAGES + crate::workload::rr::ID_MARGIN;
                let end = first.saturating_add(counts.len() as u64);
                if end > most {
                    bail!("receiver broke the protocol: processed counts of ids {first}..{end} are beyond any trial's");
                }
                let (first, end) = (first as usize, end as usize);
                if processed.len() < end {
                    processed.resize(end, IdCounts::default());
                }
                processed[first..end].copy_from_slice(&counts);
            }
            ControlMsg::Report(report) => {
                return Ok(Collected {
                    deliveries,
                    time_wait: samples,
                    flows,
                    processed,
                    report,
                })
            }
            other => bail!(
                "receiver broke the protocol: expected records or a report, got {}",
                other.name()
            ),
        }
    }
}

pub fn pinned(cert: Option<String>) -> anyhow::Result<String> {
    cert.context("receiver sent no certificate fingerprint for a TLS transport")
}

/// Sleeps while the schedule rejects (`spec.rejecting`, from the window
/// the trial opened): a Stop sent into a reject that resets TCP would
/// reset the control connection, and with it the trial's report. A
/// blackhole needs no wait: TCP carries Stop across it when it heals.
pub async fn wait_while_rejecting(spec: &TrialSpec) {
    let Some(window) = spec.window_opens.opened_at() else {
        return;
    };
    let now = mono_now_ns().saturating_sub(window);
    if let Some(end) = rejecting_until(&spec.rejecting, now) {
        tokio::time::sleep(Duration::from_nanos(end - now)).await;
    }
}

/// The end of the stretch of `rejecting` (schedule times, joined where
/// they meet) that holds `t_ns`, if one does.
fn rejecting_until(rejecting: &[(u64, u64)], t_ns: u64) -> Option<u64> {
    rejecting
        .iter()
        .find(|&&(start, end)| (start..end).contains(&t_ns))
        .map(|&(_, end)| end)
}

/// Runs the data plane while the receiver stays quiet: it says nothing
/// between start and stop, so anything on the control connection (above
/// all its end) aborts the trial. A data plane still running after
/// `limit` ([`schedule::data_plane_limit`]) is stopped, and the trial
/// fails: every trial ends on time, whatever held it.
pub async fn while_receiver_quiet<T>(
    ctl: &mut ControlChannel,
    limit: Duration,
    data_plane: impl std::future::Future<Output = std::io::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        paced = data_plane => paced.context("pacing the workload"),
        _ = tokio::time::sleep(limit) => Err(past_limit(limit)),
        msg = ctl.recv() => match msg {
            Ok(ControlMsg::Refused { reason }) => bail!("receiver aborted the trial: {}", printable(&reason)),
            Ok(other) => bail!("receiver broke the protocol: {} during a trial", other.name()),
            Err(e) => Err(anyhow::Error::new(e).context("lost the receiver mid-trial; no result written")),
        },
    }
}

/// Runs the data plane without watching the control connection (a
/// receiver crashed in the trial takes its session with it), stopped and
/// failed as [`while_receiver_quiet`] stops it past `limit`.
pub async fn within_limit<T>(
    limit: Duration,
    data_plane: impl std::future::Future<Output = std::io::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, data_plane)
        .await
        .map_err(|_| past_limit(limit))?
        .context("pacing the workload")
}

/// Whether `e` is the control session's end: the receiver closed or
/// reset it (it crashed), not a refusal or a broken protocol.
pub fn lost_session(e: &anyhow::Error) -> bool {
    e.chain().any(|c| match c.downcast_ref::<ControlIoError>() {
        Some(ControlIoError::Closed) => true,
        Some(ControlIoError::Io(io)) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof
        ),
        _ => false,
    })
}

fn past_limit(limit: Duration) -> anyhow::Error {
    anyhow::anyhow!(
        "the data plane still ran {} after it started, past warm-up + duration + loss timeout + {}: \
         stopped, no result written (a transport that blocked, or a machine too loaded to finish)",
        humantime::format_duration(limit),
        humantime::format_duration(schedule::GRACE)
    )
}

/// Whether a trial's numbers can be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Why they cannot; empty if they can.
    pub reasons: Vec<String>,
    /// The only reasons are the sender's missed schedule (send lag, sends
    /// never made): the host was busy, and the trial may be run again.
    pub missed_schedule: bool,
}

/// Why a trial's numbers cannot be trusted. Strangers' traffic the
/// receiver rejected is not the trial's and leaves it valid, unless the
/// trial lost messages too: then the strangers may have displaced them,
/// and nobody can tell.
pub fn verdict(
    spec: &TrialSpec,
    send_lag: &LatencySummary,
    measured_ns: u64,
    counters: &Counters,
    unsent: u64,
    errors: &ErrorLog,
    receiver: &ReceiverReport,
) -> Verdict {
    let mut reasons = Vec::new();
    let sent = counters.sent;
    if receiver.errors > 0 {
        reasons.push(format!(
            "the receiver's data plane failed {} times, first: {}",
            receiver.errors,
            receiver.error_messages.join("; ")
        ));
    }
    if receiver.discarded > 0 {
        reasons.push(format!(
            "the receiver discarded {} of the trial's own messages (malformed, or past its record limit): \
             they count as lost here",
            receiver.discarded
        ));
    }
    if receiver.rejected > 0 && counters.lost > 0 {
        reasons.push(format!(
            "the receiver rejected {} datagrams or connections from outside the trial while {} of the \
             trial's were lost: the strangers' traffic may have displaced them",
            receiver.rejected, counters.lost
        ));
    }
    let workload = spec.workload();
    let rate = spec.workload.rate();
    let lag_bound = spec.send_lag_bound_ns();
    let mut missed = Vec::new();
    let (sends, advice) = match workload {
        Workload::Rr => ("requests", "lower --rate, or use --closed-loop"),
        Workload::Multistream => ("messages", "lower --rate or --streams"),
        Workload::Stream => ("datagrams", "lower --bitrate, or add --gso"),
        Workload::Churn | Workload::Handshake => {
            ("connections", "lower --conn-rate, or raise --max-inflight")
        }
        // Paced by the transport: no schedule to miss, but a load's probe has one.
        Workload::Bulk => ("writes", ""),
        Workload::Load => ("probe requests", "lower --probe-rate, or raise --max-send-lag"),
        Workload::Heartbeat => (
            "heartbeats",
            "a longer --heartbeat-interval, or raise --max-send-lag",
        ),
    };
    if rate.is_some() && send_lag.p99 > lag_bound {
        missed.push(format!(
            "send_lag p99 {:.3} ms exceeds {:.3} ms: the sender could not keep its schedule ({advice})",
            send_lag.p99 as f64 / 1e6,
            lag_bound as f64 / 1e6
        ));
    }
    if unsent > 0 {
        missed.push(format!(
            "the sender fell so far behind its schedule that {unsent} {sends} of the measured window were \
             never sent: it stops {} ms after the window closes ({advice})",
            schedule::LATE_SEND_NS / 1_000_000
        ));
    }
    if measured_ns < spec.duration.as_nanos() as u64 {
        reasons.push(format!(
            "the data plane failed after {:.3} s of the {:.3} s measured window",
            measured_ns as f64 / 1e9,
            spec.duration.as_secs_f64()
        ));
    }
    if sent == 0 {
        reasons.push("no message was sent in the measured window".into());
    }
    if errors.count > 0 {
        reasons.push(format!(
            "{} data-plane errors, first: {}",
            errors.count,
            errors.messages.join("; ")
        ));
    }
    Verdict {
        missed_schedule: !missed.is_empty() && reasons.is_empty(),
        reasons: missed.into_iter().chain(reasons).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_waits_to_the_end_of_the_reject_it_falls_in() {
        let rejecting = [(2_000, 3_000), (5_000, 6_000)];
        assert_eq!(rejecting_until(&rejecting, 1_999), None);
        assert_eq!(rejecting_until(&rejecting, 2_000), Some(3_000));
        assert_eq!(rejecting_until(&rejecting, 2_999), Some(3_000));
        assert_eq!(rejecting_until(&rejecting, 3_000), None, "healed");
        assert_eq!(rejecting_until(&rejecting, 5_500), Some(6_000));
    }
}
