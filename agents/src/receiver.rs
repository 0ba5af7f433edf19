//! The receiver agent: serves control sessions until stopped; each session
//! authenticates, then runs trials, each on fresh data-plane sockets.

use anyhow::{bail, Context};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use transbench_wire::auth::{from_hex, random_nonce, to_hex, FrameMac, Role, Secret, NONCE_LEN};
use transbench_wire::control::{MAGIC, PROTOCOL_VERSION};
use transbench_wire::{printable, ControlMsg, TrialSetup, WorkloadSetup, HEADER_LEN};

use crate::admission::{
    self, MemoryBudget, PendingHandshakes, ReceiverLimits, Reservation, BASE_BYTES, MAX_CLOCK_PROBES,
    SESSION_BYTES,
};
use crate::clock::mono_now_ns;
use crate::control_io::{ControlChannel, ControlIoError};
use crate::dataplane::listen::ServerTls;
use crate::dataplane::multi;
use crate::egress::EgressPolicy;
use crate::spec::churn::MAX_INFLIGHT;
use crate::workload::TrialServer;
use hostimpair::QdiscLease;

/// How long a peer may take over the hello and auth exchange: two round
/// trips, with room for a slow path and a busy host.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Receiver {
    listener: TcpListener,
    ctx: Arc<ReceiverState>,
}

/// What every session of a receiver shares: its secret, the TLS identity
/// of its data planes, its limits and its memory budget.
struct ReceiverState {
    secret: Option<Secret>,
    /// `--allow-impair`: the interfaces a trial may impair.
    egress: Option<Arc<EgressPolicy>>,
    tls: ServerTls,
    limits: ReceiverLimits,
    budget: Arc<MemoryBudget>,
    sessions: AtomicUsize,
}

/// The connections in their handshake, and how to drop each.
#[derive(Default)]
struct Handshakes {
    table: PendingHandshakes,
    tasks: HashMap<u64, AbortHandle>,
}

type SharedHandshakes = Arc<Mutex<Handshakes>>;

fn lock(h: &SharedHandshakes) -> std::sync::MutexGuard<'_, Handshakes> {
    h.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Receiver {
    /// Binds the control port. Without a secret, only loopback is allowed:
    /// anyone who can reach the port could otherwise drive traffic.
    pub async fn bind(
        listen: SocketAddr,
        secret: Option<Secret>,
        limits: ReceiverLimits,
        egress: Option<Arc<EgressPolicy>>,
    ) -> anyhow::Result<Self> {
        if secret.is_none() && !listen.ip().is_loopback() {
            bail!(
                "refusing to listen on {listen} without a shared secret: anyone who reaches it could \
                 make this host send traffic. Pass --secret-file FILE (or set TRANSBENCH_SECRET) on \
                 both agents, or listen on 127.0.0.1 / [::1]"
            );
        }
        let floor = BASE_BYTES + SESSION_BYTES;
        if limits.memory_budget < floor {
            bail!(
                "--memory-budget {} leaves no room for a session: give at least {} bytes ({} MiB)",
                limits.memory_budget,
                floor,
                floor >> 20
            );
        }
        if let Some(rate) = limits.max_rate {
            if !(rate.is_finite() && rate > 0.0) {
                bail!("--max-rate {rate} must be a positive number of messages (or connections) per second");
            }
        }
        if limits.max_sessions == 0 {
            bail!("--max-sessions 0 would refuse every sender: give at least 1");
        }
        raise_descriptor_limit();
        let ctx = ReceiverState {
            tls: ServerTls::self_signed()?,
            secret,
            egress,
            budget: MemoryBudget::new(limits.memory_budget),
            limits,
            sessions: AtomicUsize::new(0),
        };
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} (in use? wrong address?)"))?;
        Ok(Receiver {
            listener,
            ctx: Arc::new(ctx),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves sessions until the listener fails. Hello and authentication
    /// run here, on the acceptor, each under a deadline; a new connection
    /// always gets in, and room is made by dropping one that has not said
    /// hello (see [`PendingHandshakes`]), so strangers holding connections
    /// open cannot keep a sender out. Only an authenticated session gets a
    /// thread of its own, with a single-threaded runtime: no hand-offs
    /// between worker threads on the data path (they cost tens of
    /// microseconds per request for QUIC, and would be measured as
    /// latency), sessions spread over cores, and one bad peer never stops
    /// the others.
    pub async fn serve(self) -> anyhow::Result<()> {
        let handshakes = SharedHandshakes::default();
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: the handshakes in
                    // progress end by their deadline and free some.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (id, evicted) = {
                let mut h = lock(&handshakes);
                let (id, evicted) = h.table.admit(peer.ip());
                for e in &evicted {
                    if let Some(task) = h.tasks.remove(e) {
                        task.abort();
                    }
                }
                (id, evicted)
            };
            if !evicted.is_empty() {
                tracing::debug!(%peer, dropped = evicted.len(), "handshakes full: dropped the longest silent");
            }
            let (ctx, shared) = (self.ctx.clone(), handshakes.clone());
            let task = tokio::spawn(async move {
                let said_hello = || lock(&shared).table.said_hello(id);
                let handshake =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(stream, &ctx, said_hello)).await;
                {
                    let mut h = lock(&shared);
                    h.tasks.remove(&id);
                    h.table.finish(id);
                }
                let (ctl, admitted) = match handshake {
                    Ok(Ok(session)) => session,
                    Ok(Err(e)) => return tracing::warn!(%peer, "session refused: {}", peer_text(&e)),
                    Err(_) => {
                        return tracing::warn!(%peer, "session refused: no handshake within {HANDSHAKE_TIMEOUT:?}")
                    }
                };
                if let Err(e) = start_session(ctl, admitted, ctx).await {
                    tracing::warn!(%peer, "session not started: {}", peer_text(&e));
                }
            });
            {
                let mut h = lock(&handshakes);
                if h.table.contains(id) {
                    h.tasks.insert(id, task.abort_handle());
                }
            }
            // Let the new connection read what it was sent before the next
            // is accepted: a sender's hello is there already, and once read
            // it puts the sender behind every silent stranger in line to
            // be dropped.
            tokio::task::yield_now().await;
        }
    }
}

/// Each handshake, session and data connection is a descriptor: take what
/// the hard limit allows, so the soft default (often 1024) is not what
/// runs out first.
fn raise_descriptor_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on this process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// What an authenticated session holds while it lives: its place among
/// the receiver's sessions and its memory.
struct Admitted {
    _slot: SessionSlot,
    _memory: Reservation,
}

/// A place for one more session, if the receiver's session limit and
/// memory budget have room; else the reason, for the sender.
fn admit_session(ctx: &Arc<ReceiverState>) -> Result<Admitted, String> {
    let max = ctx.limits.max_sessions;
    let slot = SessionSlot::take(ctx, max).ok_or_else(|| {
        format!(
            "receiver busy: {max} sessions already running (its --max-sessions); try again later, or restart \
             the receiver with a larger --max-sessions"
        )
    })?;
    let memory = ctx
        .budget
        .reserve(SESSION_BYTES)
        .map_err(|used| over_budget("a session", SESSION_BYTES, used, &ctx.budget))?;
    Ok(Admitted {
        _slot: slot,
        _memory: memory,
    })
}

/// Hands an authenticated session to a thread of its own.
async fn start_session(
    ctl: ControlChannel,
    admitted: Admitted,
    ctx: Arc<ReceiverState>,
) -> anyhow::Result<()> {
    let peer = ctl.stream().peer_addr()?;
    let local_ip = ctl.stream().local_addr()?.ip();
    let (stream, mac) = ctl.into_std()?;
    std::thread::Builder::new()
        .name(format!("session {peer}"))
        .spawn(move || {
            let _held = admitted;
            let outcome = crate::single_thread_runtime().and_then(|rt| {
                rt.block_on(async {
                    let ctl = ControlChannel::from_std(stream, mac)?;
                    trials(ctl, &ctx, local_ip, peer.ip()).await
                })
            });
            match outcome {
                Ok(()) => tracing::info!(%peer, "session ended"),
                Err(e) => tracing::warn!(%peer, "session failed: {}", peer_text(&e)),
            }
        })
        .context("starting a session thread")?;
    Ok(())
}

fn over_budget(what: &str, bytes: u64, used: u64, budget: &MemoryBudget) -> String {
    format!(
        "receiver out of memory budget: {what} needs {} MiB and {} of its --memory-budget {} MiB are in use; \
         try again later, ask for less (shorter, slower, smaller messages), or restart the receiver with a \
         larger --memory-budget",
        bytes.div_ceil(1 << 20),
        used >> 20,
        budget.total() >> 20
    )
}

/// Counts a running session for as long as it lives.
struct SessionSlot(Arc<ReceiverState>);

impl SessionSlot {
    fn take(ctx: &Arc<ReceiverState>, max: usize) -> Option<Self> {
        ctx.sessions
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(SessionSlot(ctx.clone()))
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An error of a session, for the log: its whole chain, escaped, since
/// it may quote what the peer sent (a field it got wrong, a name it asked
/// for).
fn peer_text(e: &anyhow::Error) -> String {
    printable(&format!("{e:#}")).into_owned()
}

async fn refuse(ctl: &mut ControlChannel, reason: String) -> anyhow::Error {
    let _ = ctl
        .send(&ControlMsg::Refused {
            reason: reason.clone(),
        })
        .await;
    anyhow::anyhow!(reason)
}

/// Hello, challenge and (with a secret) mutual authentication, the
/// sender proving first; from then on every frame is tagged.
async fn handshake(
    stream: TcpStream,
    ctx: &Arc<ReceiverState>,
    said_hello: impl FnOnce(),
) -> anyhow::Result<(ControlChannel, Admitted)> {
    let mut ctl = ControlChannel::new(stream);

    let client_nonce = match ctl.recv().await {
        Ok(ControlMsg::Hello {
            magic,
            version,
            client_nonce,
        }) => {
            if magic != MAGIC {
                return Err(refuse(&mut ctl, format!("not a transbench sender (magic {magic:?})")).await);
            }
            if version != PROTOCOL_VERSION {
                return Err(refuse(
                    &mut ctl,
                    format!(
                        "control protocol version {version} is not supported: this receiver speaks version \
                         {PROTOCOL_VERSION} (transbench {}); run the same transbench version on both ends",
                        env!("CARGO_PKG_VERSION")
                    ),
                )
                .await);
            }
            match from_hex(&client_nonce).filter(|n| n.len() == NONCE_LEN) {
                Some(n) => n,
                None => return Err(refuse(&mut ctl, "malformed client nonce".into()).await),
            }
        }
        Ok(other) => return Err(refuse(&mut ctl, format!("expected hello, got {}", other.name())).await),
        Err(ControlIoError::Protocol(e)) => {
            return Err(refuse(&mut ctl, format!("garbage on the control port: {e}")).await)
        }
        Err(e) => return Err(e.into()),
    };
    said_hello();

    let server_nonce = random_nonce();
    let secret = ctx.secret.clone();
    ctl.send(&ControlMsg::Challenge {
        server_nonce: to_hex(&server_nonce),
        auth_required: secret.is_some(),
    })
    .await?;
    let auth = match ctl.recv().await {
        Err(ControlIoError::Closed) => bail!("sender left during authentication"),
        other => other?,
    };
    match auth {
        ControlMsg::Auth { client_proof } => match (&secret, client_proof) {
            (None, _) => {}
            (Some(_), None) => return Err(refuse(
                &mut ctl,
                "this receiver requires a shared secret: pass --secret-file FILE (or set TRANSBENCH_SECRET)"
                    .into(),
            )
            .await),
            (Some(s), Some(proof)) => {
                if s.verify(Role::Sender, &client_nonce, &server_nonce, &proof)
                    .is_err()
                {
                    return Err(refuse(
                        &mut ctl,
                        "authentication failed: the sender's secret does not match the receiver's".into(),
                    )
                    .await);
                }
            }
        },
        other => return Err(refuse(&mut ctl, format!("expected auth, got {}", other.name())).await),
    }
    let admitted = match admit_session(ctx) {
        Ok(a) => a,
        Err(reason) => return Err(refuse(&mut ctl, reason).await),
    };
    ctl.send(&ControlMsg::Welcome {
        receiver_version: env!("CARGO_PKG_VERSION").to_string(),
        server_proof: secret
            .as_ref()
            .map(|s| s.prove(Role::Receiver, &client_nonce, &server_nonce)),
        boot_id: crate::host::boot_id(),
    })
    .await?;
    if let Some(s) = &secret {
        ctl.authenticate(FrameMac::new(s, Role::Receiver, &client_nonce, &server_nonce));
    }
    Ok((ctl, admitted))
}

/// A trial being served, and the memory it holds against the budget.
struct Serving {
    server: TrialServer,
    /// When the sender must have stopped it by.
    deadline: tokio::time::Instant,
    _memory: Reservation,
    /// The trial's impairment of this host's egress, given back when the
    /// trial ends or, dropped with it, when the session does.
    lease: Option<QdiscLease>,
}

/// Puts the trial's reverse profile on the interface toward the sender;
/// the reason in words when it cannot.
async fn lease_egress(ctx: &ReceiverState, peer: IpAddr, profile: &str) -> Result<QdiscLease, String> {
    let Some(policy) = ctx.egress.clone() else {
        return Err(
            "this receiver impairs no interface: start it with --allow-impair IFACE (its \
                    interface toward the sender) to run impaired cells across hosts"
                .into(),
        );
    };
    let profile = profile.to_string();
    // tc runs: off the session's runtime.
    tokio::task::spawn_blocking(move || policy.lease_toward(peer, &profile))
        .await
        .map_err(|e| format!("impairing this host's egress failed: {e}"))?
        .map_err(|e| format!("cannot impair this host's egress: {e:#}"))
}

/// Gives the trial's impaired interface back, saying so in the log.
async fn give_back(lease: QdiscLease) {
    let iface = lease.iface().to_string();
    match tokio::task::spawn_blocking(move || lease.restore()).await {
        Ok(Ok(outcome)) => tracing::info!("{iface}: {outcome}"),
        Ok(Err(e)) => tracing::error!("giving {iface} back after the trial: {e}"),
        Err(e) => tracing::error!("giving {iface} back after the trial: {e}"),
    }
}

/// Runs the trials of one authenticated session until the sender leaves,
/// and between them answers its clock probes.
async fn trials(
    mut ctl: ControlChannel,
    ctx: &ReceiverState,
    local_ip: IpAddr,
    peer_ip: IpAddr,
) -> anyhow::Result<()> {
    let limits = &ctx.limits;
    let mut trial: Option<Serving> = None;
    let mut clock_probes = 0u32;
    loop {
        let deadline = match &trial {
            Some(t) => t.deadline,
            None => tokio::time::Instant::now() + limits.idle_timeout,
        };
        let (msg, read_ns) = match tokio::time::timeout_at(deadline, ctl.recv_timed()).await {
            Ok(Ok(m)) => m,
            Ok(Err(ControlIoError::Closed)) => return Ok(()),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                let reason = match trial {
                    Some(_) => format!(
                        "the trial ran past the end it declared and then {} more (the receiver's \
                         --idle-timeout): session closed",
                        humantime::format_duration(limits.idle_timeout)
                    ),
                    None => format!(
                        "session idle for {} (the receiver's --idle-timeout): closed",
                        humantime::format_duration(limits.idle_timeout)
                    ),
                };
                return Err(refuse(&mut ctl, reason).await);
            }
        };
        match msg {
            ControlMsg::ClockProbe { t1 } => {
                // During a trial the echo would break the receiver's
                // silence and take the data plane's thread.
                if trial.is_some() {
                    return Err(refuse(
                        &mut ctl,
                        "clock probe during a trial: probe between trials".into(),
                    )
                    .await);
                }
                clock_probes += 1;
                if clock_probes > MAX_CLOCK_PROBES {
                    let reason = format!("more than {MAX_CLOCK_PROBES} clock probes in one session");
                    return Err(refuse(&mut ctl, reason).await);
                }
                let echo = ControlMsg::ClockEcho {
                    t1,
                    t2: read_ns,
                    t3: mono_now_ns(),
                };
                ctl.send(&echo).await?;
            }
            ControlMsg::Setup(setup) => {
                if trial.is_some() {
                    return Err(refuse(&mut ctl, "setup while a trial is running".into()).await);
                }
                if let Err(reason) = limits.check(&setup) {
                    return Err(refuse(&mut ctl, reason).await);
                }
                let bytes = admission::trial_bytes(&setup);
                let memory = match ctx.budget.reserve(bytes) {
                    Ok(m) => m,
                    Err(used) => {
                        let reason = over_budget("this trial", bytes, used, &ctx.budget);
                        return Err(refuse(&mut ctl, reason).await);
                    }
                };
                if let Err(e) = validate(&setup) {
                    return Err(refuse(&mut ctl, format!("cannot set up the trial: {e:#}")).await);
                }
                // Before the data plane, so the trial's first packet
                // already crosses it.
                let lease = match &setup.reverse_impair {
                    None => None,
                    Some(profile) => match lease_egress(ctx, peer_ip, profile).await {
                        Ok(lease) => Some(lease),
                        Err(reason) => return Err(refuse(&mut ctl, reason).await),
                    },
                };
                let served = crate::workload::serve_trial(&setup, &ctx.tls, local_ip, peer_ip).await;
                match served {
                    Ok(server) => {
                        let ready = ControlMsg::Ready {
                            data_port: server.data_port,
                            cert_sha256: ctx.tls.fingerprint_for(setup.transport),
                            token: server.token,
                        };
                        tracing::info!(transport = %setup.transport, workload = %setup.workload.kind(), size = setup.size, "trial set up");
                        trial = Some(Serving {
                            server,
                            deadline: tokio::time::Instant::now() + limits.trial_deadline(&setup),
                            _memory: memory,
                            lease,
                        });
                        ctl.send(&ready).await?;
                    }
                    Err(e) => return Err(refuse(&mut ctl, format!("cannot set up the trial: {e:#}")).await),
                }
            }
            ControlMsg::Start => match trial.as_mut() {
                Some(t) => {
                    t.server.start();
                }
                None => return Err(refuse(&mut ctl, "start before setup".into()).await),
            },
            ControlMsg::Stop { expect, wait_ns } => match trial.take() {
                Some(Serving {
                    server: t,
                    _memory,
                    lease,
                    ..
                }) => {
                    if let Some(expect) = expect {
                        t.await_done(expect, Duration::from_nanos(wait_ns.min(MAX_DRAIN_NS)))
                            .await;
                    }
                    let mut served = t.stop().await;
                    for frame in &served.records {
                        ctl.send(frame).await?;
                    }
                    // After the trial: it runs ip and ethtool.
                    served.report.host =
                        tokio::task::spawn_blocking(move || crate::host::host_info_toward(peer_ip))
                            .await
                            .ok()
                            .map(Box::new);
                    // Before the report: the sender's next trial may ask
                    // for the interface again as soon as it has it.
                    if let Some(lease) = lease {
                        give_back(lease).await;
                    }
                    ctl.send(&ControlMsg::Report(served.report)).await?;
                }
                None => return Err(refuse(&mut ctl, "stop without a trial".into()).await),
            },
            other => return Err(refuse(&mut ctl, format!("unexpected {} frame", other.name())).await),
        }
    }
}

/// The longest a receiver waits for a one-way trial's last messages (the
/// sender refuses longer loss timeouts).
const MAX_DRAIN_NS: u64 = crate::spec::MAX_ONE_WAY_WAIT.as_nanos() as u64;

fn validate(setup: &TrialSetup) -> anyhow::Result<()> {
    let workload = setup.workload.kind();
    if !workload.runs_on(setup.transport.capabilities()) {
        bail!("transport {} does not run workload {workload}", setup.transport);
    }
    match setup.workload {
        WorkloadSetup::Multistream { streams, .. } if !(1..=multi::MAX_STREAMS).contains(&streams) => {
            bail!("{streams} streams is out of range: 1 to {}", multi::MAX_STREAMS);
        }
        WorkloadSetup::Churn { max_inflight, .. } | WorkloadSetup::Handshake { max_inflight, .. }
            if !(1..=MAX_INFLIGHT).contains(&max_inflight) =>
        {
            bail!("--max-inflight {max_inflight} is out of range: 1 to {MAX_INFLIGHT}");
        }
        WorkloadSetup::Rr {
            delivery: Some(_), ..
        } if setup.plan.messages.is_none() => {
            bail!("counting delivery per request id needs an open-loop schedule: drop --closed-loop");
        }
        WorkloadSetup::Bulk { flows, .. } if !(1..=crate::spec::bulk::MAX_FLOWS).contains(&flows) => {
            bail!(
                "{flows} flows is out of range: 1 to {}",
                crate::spec::bulk::MAX_FLOWS
            );
        }
        _ => {}
    }
    let max = crate::transport::max_message(setup.transport);
    let size = setup.size as usize;
    if !(HEADER_LEN..=max).contains(&size) {
        bail!(
            "message size {size} is outside {HEADER_LEN}..={max} bytes for {}",
            setup.transport
        );
    }
    Ok(())
}

/// What `--listen` resolves to; a bare port means loopback.
pub fn parse_listen(s: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .with_context(|| format!("--listen {s:?} is not ADDR:PORT (e.g. 127.0.0.1:7700 or [::1]:7700)"))
}
