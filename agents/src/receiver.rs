//! The receiver agent: serves control sessions until stopped; each session
//! authenticates, then runs trials, each on fresh data-plane sockets.

use anyhow::{bail, Context};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use transbench_wire::auth::{from_hex, random_nonce, to_hex, FrameMac, Role, Secret, NONCE_LEN};
use transbench_wire::control::SAMPLES_PER_FRAME;
use transbench_wire::control::{MAGIC, PROTOCOL_VERSION};
use transbench_wire::delivery::{self, RECORDS_PER_FRAME};
use transbench_wire::{printable, ControlMsg, TrialSetup, WorkloadSetup, HEADER_LEN};

use crate::control_io::{ControlChannel, ControlIoError};
use crate::dataplane::listen::ServerTls;
use crate::dataplane::multi;
use crate::workload::TrialServer;

/// How long a peer may take over the hello and auth exchange.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a session may sit idle between control frames.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

pub struct Receiver {
    listener: TcpListener,
    ctx: Arc<ReceiverState>,
}

/// What every session of a receiver shares: its secret, and the TLS
/// identity of its data planes.
struct ReceiverState {
    secret: Option<Secret>,
    tls: ServerTls,
}

impl Receiver {
    /// Binds the control port. Without a secret, only loopback is allowed:
    /// anyone who can reach the port could otherwise drive traffic.
    pub async fn bind(listen: SocketAddr, secret: Option<Secret>) -> anyhow::Result<Self> {
        if secret.is_none() && !listen.ip().is_loopback() {
            bail!(
                "refusing to listen on {listen} without a shared secret: anyone who reaches it could \
                 make this host send traffic. Pass --secret-file FILE (or set TRANSBENCH_SECRET) on \
                 both agents, or listen on 127.0.0.1 / [::1]"
            );
        }
        let ctx = ReceiverState {
            tls: ServerTls::self_signed()?,
            secret,
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
    /// run here, on the acceptor, under their own cap and deadline; only an
    /// authenticated session gets a thread of its own, with a
    /// single-threaded runtime: no hand-offs between worker threads on the
    /// data path (they cost tens of microseconds per request for QUIC, and
    /// would be measured as latency), sessions spread over cores, and one
    /// bad peer never stops the others.
    pub async fn serve(self) -> anyhow::Result<()> {
        let active = Arc::new(AtomicUsize::new(0));
        let pending = Arc::new(AtomicUsize::new(0));
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if pending.load(Ordering::Acquire) >= MAX_PENDING_HANDSHAKES {
                tracing::warn!(%peer, "too many connections in their handshake; dropped this one");
                continue;
            }
            let slot = SessionSlot::take(&pending);
            let (ctx, active) = (self.ctx.clone(), active.clone());
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(stream, &ctx)).await;
                drop(slot);
                let ctl = match handshake {
                    Ok(Ok(ctl)) => ctl,
                    Ok(Err(e)) => return tracing::warn!(%peer, "session refused: {}", peer_text(&e)),
                    Err(_) => {
                        return tracing::warn!(%peer, "session refused: no handshake within {HANDSHAKE_TIMEOUT:?}")
                    }
                };
                if let Err(e) = start_session(ctl, ctx, &active).await {
                    tracing::warn!(%peer, "session not started: {}", peer_text(&e));
                }
            });
        }
    }
}

/// Hands an authenticated session to a thread of its own.
async fn start_session(
    mut ctl: ControlChannel,
    ctx: Arc<ReceiverState>,
    active: &Arc<AtomicUsize>,
) -> anyhow::Result<()> {
    if active.load(Ordering::Acquire) >= MAX_SESSIONS {
        let reason = format!("receiver busy: {MAX_SESSIONS} sessions already running; try again later");
        return Err(refuse(&mut ctl, reason).await);
    }
    let peer = ctl.stream().peer_addr()?;
    let local_ip = ctl.stream().local_addr()?.ip();
    let (stream, mac) = ctl.into_std()?;
    let slot = SessionSlot::take(active);
    std::thread::Builder::new()
        .name(format!("session {peer}"))
        .spawn(move || {
            let _slot = slot;
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

/// Connections still in hello/auth at once; more are dropped unanswered.
const MAX_PENDING_HANDSHAKES: usize = 128;
/// Most sessions served at once; more are refused with a reason.
const MAX_SESSIONS: usize = 64;

/// Counts a running session for as long as it lives.
struct SessionSlot(Arc<AtomicUsize>);

impl SessionSlot {
    fn take(active: &Arc<AtomicUsize>) -> Self {
        active.fetch_add(1, Ordering::AcqRel);
        SessionSlot(active.clone())
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
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

async fn recv_within(ctl: &mut ControlChannel, limit: Duration) -> Result<ControlMsg, ControlIoError> {
    tokio::time::timeout(limit, ctl.recv())
        .await
        .unwrap_or_else(|_| Err(ControlIoError::Io(std::io::ErrorKind::TimedOut.into())))
}

/// Hello, challenge and (with a secret) mutual authentication; from then
/// on every frame is tagged.
async fn handshake(stream: TcpStream, ctx: &ReceiverState) -> anyhow::Result<ControlChannel> {
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

    let server_nonce = random_nonce();
    let secret = ctx.secret.clone();
    ctl.send(&ControlMsg::Challenge {
        server_nonce: to_hex(&server_nonce),
        auth_required: secret.is_some(),
        server_proof: secret
            .as_ref()
            .map(|s| s.prove(Role::Receiver, &client_nonce, &server_nonce)),
    })
    .await?;
    let auth = match ctl.recv().await {
        Err(ControlIoError::Closed) if secret.is_some() => {
            bail!("sender left during authentication: it holds a different secret, or none")
        }
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
    if let Some(s) = &secret {
        ctl.authenticate(FrameMac::new(s, Role::Receiver, &client_nonce, &server_nonce));
    }
    ctl.send(&ControlMsg::Welcome {
        receiver_version: env!("CARGO_PKG_VERSION").to_string(),
        boot_id: crate::host::boot_id(),
    })
    .await?;
    Ok(ctl)
}

/// Runs the trials of one authenticated session until the sender leaves.
async fn trials(
    mut ctl: ControlChannel,
    ctx: &ReceiverState,
    local_ip: IpAddr,
    peer_ip: IpAddr,
) -> anyhow::Result<()> {
    let mut trial: Option<TrialServer> = None;
    loop {
        let msg = match recv_within(&mut ctl, IDLE_TIMEOUT).await {
            Ok(m) => m,
            Err(ControlIoError::Closed) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        match msg {
            ControlMsg::Setup(setup) => {
                if trial.is_some() {
                    return Err(refuse(&mut ctl, "setup while a trial is running".into()).await);
                }
                let served = match validate(&setup) {
                    Ok(()) => crate::workload::serve_trial(&setup, &ctx.tls, local_ip, peer_ip).await,
                    Err(e) => Err(e),
                };
                match served {
                    Ok(server) => {
                        let ready = ControlMsg::Ready {
                            data_port: server.data_port,
                            cert_sha256: ctx.tls.fingerprint_for(setup.transport),
                            token: server.token,
                        };
                        tracing::info!(transport = %setup.transport, workload = %setup.workload.kind(), size = setup.size, "trial set up");
                        trial = Some(server);
                        ctl.send(&ready).await?;
                    }
                    Err(e) => return Err(refuse(&mut ctl, format!("cannot set up the trial: {e:#}")).await),
                }
            }
            ControlMsg::Start => match trial.as_mut() {
                Some(t) => {
                    t.start();
                }
                None => return Err(refuse(&mut ctl, "start before setup".into()).await),
            },
            ControlMsg::Stop { expect, wait_ns } => match trial.take() {
                Some(t) => {
                    if let Some(expect) = expect {
                        t.await_deliveries(expect, wait_ns.min(MAX_DRAIN_NS)).await;
                    }
                    let (report, deliveries, samples) = t.stop().await;
                    for batch in deliveries.chunks(RECORDS_PER_FRAME) {
                        ctl.send(&ControlMsg::Deliveries {
                            records: delivery::encode(batch),
                        })
                        .await?;
                    }
                    for batch in samples.chunks(SAMPLES_PER_FRAME) {
                        ctl.send(&ControlMsg::TimeWait {
                            samples: batch.to_vec(),
                        })
                        .await?;
                    }
                    ctl.send(&ControlMsg::Report(report)).await?;
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
    if let WorkloadSetup::Multistream { streams, .. } = setup.workload {
        if !(1..=multi::MAX_STREAMS).contains(&streams) {
            bail!("{streams} streams is out of range: 1 to {}", multi::MAX_STREAMS);
        }
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
