//! TLS for `tcp+tls` and `quic`: the receiver's self-signed identity and the
//! sender's pinned verification. The sender learns the certificate's SHA-256
//! fingerprint over the authenticated control channel and accepts exactly
//! that certificate; handshake signatures are still verified.

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use transbench_wire::auth::to_hex;
use transbench_wire::{TrialToken, TOKEN_LEN};

/// The name in the receiver's certificate and the one the sender asks for.
pub const SERVER_NAME: &str = "transbench";
pub const QUIC_ALPN: &[u8] = b"transbench/1";

/// ring, with TLS 1.3's AES-128-GCM first: the suite every TLS 1.3 and
/// QUIC stack must implement (RFC 8446 9.1), what browsers offer first,
/// and what quinn's perf tool takes, so that tcp+tls, quic and their
/// peers pay for the same cipher. (rustls would take AES-256-GCM.)
fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::cipher_suite::{
        TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
    };
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256,
        ],
        ..rustls::crypto::ring::default_provider()
    })
}

pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    to_hex(ring::digest::digest(&ring::digest::SHA256, cert.as_ref()).as_ref())
}

/// The receiver's certificate and key, made once at start.
pub struct Identity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    pub fingerprint: String,
}

impl Identity {
    pub fn self_signed() -> anyhow::Result<Self> {
        let ck = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()])
            .context("generating the receiver's self-signed certificate")?;
        let cert = ck.cert.der().clone();
        let key = PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der());
        Ok(Identity {
            fingerprint: fingerprint(&cert),
            cert,
            key,
        })
    }

    fn server_config(&self, alpn: &[u8]) -> anyhow::Result<rustls::ServerConfig> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .context("loading the receiver's certificate into rustls")?;
        cfg.alpn_protocols = vec![alpn.to_vec()];
        Ok(cfg)
    }

    pub fn tls_server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        Ok(Arc::new(self.server_config(b"transbench-tcp/1")?))
    }

    /// The QUIC server for one trial, with its congestion controller;
    /// `zero_rtt` accepts 0-RTT data from resumed sessions.
    pub fn quic_server_config(
        &self,
        congestion: Option<&str>,
        zero_rtt: bool,
    ) -> anyhow::Result<quinn::ServerConfig> {
        let mut tls = self.server_config(QUIC_ALPN)?;
        if zero_rtt {
            // QUIC takes all or nothing here (RFC 9001 4.6.1).
            tls.max_early_data_size = u32::MAX;
            // Every connection of a churn trial leaves tickets behind.
            tls.session_storage = rustls::server::ServerSessionMemoryCache::new(ZERO_RTT_SESSIONS);
        }
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .context("building the QUIC server's TLS configuration")?;
        let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        cfg.transport_config(Arc::new(quic_transport(congestion)?));
        Ok(cfg)
    }
}

/// Sessions a 0-RTT receiver remembers for resumption.
const ZERO_RTT_SESSIONS: usize = 65_536;

/// TLS 1.3 session tickets a 0-RTT client holds (the newest are kept).
const MAX_TICKETS: usize = 1024;

/// A client that pins the receiver's certificate and never resumes, so
/// every connection pays a full handshake.
fn client_config(pinned_sha256: &str, alpn: &[u8]) -> anyhow::Result<rustls::ClientConfig> {
    let provider = provider();
    let verifier = PinnedCert {
        sha256: pinned_sha256.to_ascii_lowercase(),
        algorithms: provider.signature_verification_algorithms,
    };
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(cfg)
}

pub fn tls_client_config(pinned_sha256: &str) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    Ok(Arc::new(client_config(pinned_sha256, b"transbench-tcp/1")?))
}

pub fn quic_client_config(
    pinned_sha256: &str,
    congestion: Option<&str>,
    token: TrialToken,
) -> anyhow::Result<quinn::ClientConfig> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(client_config(pinned_sha256, QUIC_ALPN)?)
        .context("building the QUIC client's TLS configuration")?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(Arc::new(quic_transport(congestion)?));
    show_token(&mut cfg, token);
    Ok(cfg)
}

/// Connections of `cfg` show the trial's token in their first destination
/// connection ID, which the receiver checks before anything else: the
/// token, then 8 random bytes, since RFC 9000 (7.2) wants at least 8
/// unpredictable ones and the receiver's endpoint tells connections apart
/// by this ID until the handshake gives them their own.
fn show_token(cfg: &mut quinn::ClientConfig, token: TrialToken) {
    cfg.initial_dst_cid_provider(Arc::new(move || {
        let mut id = [0u8; 2 * TOKEN_LEN];
        id[..TOKEN_LEN].copy_from_slice(token.as_bytes());
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id[TOKEN_LEN..])
            .expect("the OS random source is available");
        quinn::ConnectionId::new(&id)
    }));
}

/// A QUIC client that resumes sessions and sends its request as 0-RTT
/// data. The receiver sends session tickets once the handshake is done, a
/// round trip after it answered the 0-RTT request, so a connection that
/// closed the moment it had its response would never get them and the
/// connections after it would find none: each connection gets a
/// configuration of its own that says when its tickets have come, and
/// stays open until then, as a browser keeps its connections.
pub struct ZeroRttClient {
    tls: rustls::ClientConfig,
    transport: Arc<quinn::TransportConfig>,
    tickets: Arc<TicketStore>,
    token: TrialToken,
}

impl ZeroRttClient {
    pub fn new(pinned_sha256: &str, congestion: Option<&str>, token: TrialToken) -> anyhow::Result<Self> {
        let mut tls = client_config(pinned_sha256, QUIC_ALPN)?;
        tls.enable_early_data = true;
        Ok(ZeroRttClient {
            tls,
            transport: Arc::new(quic_transport(congestion)?),
            tickets: Arc::default(),
            token,
        })
    }

    /// The configuration of one connection, and what tells when a ticket
    /// has come to it.
    pub fn connection(&self) -> anyhow::Result<(quinn::ClientConfig, Arc<ConnectionTickets>)> {
        let mine = Arc::new(ConnectionTickets {
            shared: self.tickets.clone(),
            arrived: tokio::sync::Notify::new(),
        });
        let mut tls = self.tls.clone();
        tls.resumption = rustls::client::Resumption::store(mine.clone());
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .context("building the QUIC client's TLS configuration")?;
        let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
        cfg.transport_config(self.transport.clone());
        show_token(&mut cfg, self.token);
        Ok((cfg, mine))
    }
}

/// The session tickets of a 0-RTT client (one server: the trial's
/// receiver).
#[derive(Debug, Default)]
struct TicketStore {
    tickets: std::sync::Mutex<std::collections::VecDeque<rustls::client::Tls13ClientSessionValue>>,
    kx_hint: std::sync::Mutex<Option<rustls::NamedGroup>>,
}

/// One connection's view of the client's tickets: the same store, and a
/// signal when a ticket came to this connection.
#[derive(Debug)]
pub struct ConnectionTickets {
    shared: Arc<TicketStore>,
    arrived: tokio::sync::Notify,
}

impl ConnectionTickets {
    /// Waits until this connection has received a ticket, at most `limit`.
    pub async fn arrived(&self, limit: std::time::Duration) {
        let _ = tokio::time::timeout(limit, self.arrived.notified()).await;
    }
}

impl rustls::client::ClientSessionStore for ConnectionTickets {
    fn set_kx_hint(&self, _: ServerName<'static>, group: rustls::NamedGroup) {
        *self.shared.kx_hint.lock().expect("ticket lock") = Some(group);
    }

    fn kx_hint(&self, _: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        *self.shared.kx_hint.lock().expect("ticket lock")
    }

    // TLS 1.3 only.
    fn set_tls12_session(&self, _: ServerName<'static>, _: rustls::client::Tls12ClientSessionValue) {}

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<rustls::client::Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {}

    fn insert_tls13_ticket(&self, _: ServerName<'static>, value: rustls::client::Tls13ClientSessionValue) {
        let mut tickets = self.shared.tickets.lock().expect("ticket lock");
        if tickets.len() == MAX_TICKETS {
            tickets.pop_front();
        }
        tickets.push_back(value);
        drop(tickets);
        // A stored permit: the connection may start waiting after this.
        self.arrived.notify_one();
    }

    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.shared.tickets.lock().expect("ticket lock").pop_back()
    }
}

/// QUIC's congestion controllers by the names `--cc` takes (quinn's own
/// implementations; cubic is quinn's default).
pub const QUIC_CONGESTION: [&str; 3] = ["cubic", "bbr", "reno"];

fn quic_transport(congestion: Option<&str>) -> anyhow::Result<quinn::TransportConfig> {
    use quinn::congestion::{BbrConfig, CubicConfig, NewRenoConfig};
    let mut transport = quinn::TransportConfig::default();
    // A stream per request: allow enough in flight for open-loop rates.
    transport.max_concurrent_bidi_streams(1024u32.into());
    match congestion.unwrap_or("cubic") {
        "cubic" => transport.congestion_controller_factory(Arc::new(CubicConfig::default())),
        "bbr" => transport.congestion_controller_factory(Arc::new(BbrConfig::default())),
        "reno" | "newreno" => transport.congestion_controller_factory(Arc::new(NewRenoConfig::default())),
        other => anyhow::bail!(
            "QUIC congestion control {other:?} is not available: quinn has {}",
            QUIC_CONGESTION.join(", ")
        ),
    };
    Ok(transport)
}

pub fn server_name() -> ServerName<'static> {
    ServerName::try_from(SERVER_NAME).expect("static name is valid")
}

/// Accepts exactly the certificate whose SHA-256 the control channel gave.
#[derive(Debug)]
struct PinnedCert {
    sha256: String,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if fingerprint(end_entity) == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The suite the handshake settled on.
    async fn handshake(pin: &str) -> std::io::Result<rustls::SupportedCipherSuite> {
        let id = Identity::self_signed().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(id.tls_server_config().unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pin = if pin.is_empty() {
            id.fingerprint.clone()
        } else {
            pin.to_string()
        };
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            if let Ok(mut tls) = acceptor.accept(tcp).await {
                let mut b = [0u8; 2];
                let _ = tls.read_exact(&mut b).await;
                let _ = tls.write_all(&b).await;
                let _ = tls.flush().await;
            }
        });
        let connector = tokio_rustls::TlsConnector::from(tls_client_config(&pin).unwrap());
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut tls = connector.connect(server_name(), tcp).await?;
        tls.write_all(b"hi").await?;
        tls.flush().await?;
        let mut b = [0u8; 2];
        tls.read_exact(&mut b).await?;
        assert_eq!(&b, b"hi");
        server.await.unwrap();
        Ok(tls
            .get_ref()
            .1
            .negotiated_cipher_suite()
            .expect("a finished handshake"))
    }

    #[tokio::test]
    async fn pinned_certificate_is_accepted_with_aes_128_gcm() {
        let suite = handshake("").await.unwrap();
        assert_eq!(suite.suite(), rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    }

    #[tokio::test]
    async fn other_certificate_is_refused() {
        let wrong = "00".repeat(32);
        assert!(handshake(&wrong).await.is_err());
    }
}
