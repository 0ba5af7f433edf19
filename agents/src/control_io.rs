//! The control protocol over a TCP stream: whole frames in, whole frames
//! out, each tagged once the session is authenticated.

use std::io;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use transbench_wire::auth::{AuthError, FrameMac};
use transbench_wire::control::CONTROL_FRAMING;
use transbench_wire::frame::PREFIX_LEN;
use transbench_wire::{ControlError, ControlMsg};

use crate::clock::mono_now_ns;
use crate::read_growing::read_exact_growing;

#[derive(Debug, Error)]
pub enum ControlIoError {
    #[error("control connection closed by the peer")]
    Closed,
    #[error("control connection failed")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Protocol(#[from] ControlError),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

pub struct ControlChannel {
    stream: TcpStream,
    mac: Option<FrameMac>,
}

impl ControlChannel {
    pub fn new(stream: TcpStream) -> Self {
        // Control frames are tiny and latency matters between trial phases.
        let _ = stream.set_nodelay(true);
        ControlChannel { stream, mac: None }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// From now on every frame in both directions is tagged and checked.
    pub fn authenticate(&mut self, mac: FrameMac) {
        self.mac = Some(mac);
    }

    /// Detaches the channel from this runtime, to move it to another.
    pub fn into_std(self) -> io::Result<(std::net::TcpStream, Option<FrameMac>)> {
        Ok((self.stream.into_std()?, self.mac))
    }

    /// Reattaches a channel in the current runtime.
    pub fn from_std(stream: std::net::TcpStream, mac: Option<FrameMac>) -> io::Result<Self> {
        Ok(ControlChannel {
            stream: TcpStream::from_std(stream)?,
            mac,
        })
    }

    pub async fn send(&mut self, msg: &ControlMsg) -> io::Result<()> {
        let mut payload = msg.to_payload();
        if let Some(mac) = &mut self.mac {
            payload = mac.seal(&payload);
        }
        let mut frame = Vec::with_capacity(PREFIX_LEN + payload.len());
        CONTROL_FRAMING
            .encode(&payload, &mut frame)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.stream.write_all(&frame).await?;
        self.stream.flush().await
    }

    pub async fn recv(&mut self) -> Result<ControlMsg, ControlIoError> {
        Ok(self.recv_timed().await?.0)
    }

    /// The next message, and when the last byte of its frame was read
    /// (CLOCK_MONOTONIC ns): before its tag is checked and it is decoded,
    /// so a clock probe's timestamp leaves out what this side spends on it.
    pub async fn recv_timed(&mut self) -> Result<(ControlMsg, u64), ControlIoError> {
        let mut prefix = [0u8; PREFIX_LEN];
        match self.stream.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(ControlIoError::Closed),
            Err(e) => return Err(e.into()),
        }
        let len = CONTROL_FRAMING.decode_len(prefix).map_err(ControlError::from)?;
        let mut payload = Vec::new();
        read_exact_growing(&mut self.stream, &mut payload, len)
            .await
            .map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    ControlIoError::Closed
                } else {
                    e.into()
                }
            })?;
        let read_ns = mono_now_ns();
        Ok((self.open(&payload)?, read_ns))
    }

    /// A frame's payload as a message, its tag checked once authenticated.
    fn open(&mut self, payload: &[u8]) -> Result<ControlMsg, ControlIoError> {
        let Some(mac) = &mut self.mac else {
            return Ok(ControlMsg::decode(payload)?);
        };
        match mac.open(payload) {
            Ok(json) => Ok(ControlMsg::decode(json)?),
            // A peer that refuses the handshake's last step does so before
            // it has the session key: show its reason. (Forging one gains
            // nothing: whoever sits on the path can cut the session anyway.)
            Err(e) => match ControlMsg::decode(payload) {
                Ok(refused @ ControlMsg::Refused { .. }) => Ok(refused),
                _ => Err(e.into()),
            },
        }
    }
}
