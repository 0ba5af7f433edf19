//! The control protocol over a TCP stream: whole frames in, whole frames out.

use std::io;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use transbench_wire::control::CONTROL_FRAMING;
use transbench_wire::frame::PREFIX_LEN;
use transbench_wire::{ControlError, ControlMsg};

#[derive(Debug, Error)]
pub enum ControlIoError {
    #[error("control connection closed by the peer")]
    Closed,
    #[error("control connection failed")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Protocol(#[from] ControlError),
}

pub struct ControlChannel {
    stream: TcpStream,
}

impl ControlChannel {
    pub fn new(stream: TcpStream) -> Self {
        // Control frames are tiny and latency matters between trial phases.
        let _ = stream.set_nodelay(true);
        ControlChannel { stream }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    pub async fn send(&mut self, msg: &ControlMsg) -> io::Result<()> {
        self.stream.write_all(&msg.encode()).await?;
        self.stream.flush().await
    }

    pub async fn recv(&mut self) -> Result<ControlMsg, ControlIoError> {
        let mut prefix = [0u8; PREFIX_LEN];
        match self.stream.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(ControlIoError::Closed),
            Err(e) => return Err(e.into()),
        }
        let len = CONTROL_FRAMING.decode_len(prefix).map_err(ControlError::from)?;
        let mut payload = vec![0u8; len];
        self.stream.read_exact(&mut payload).await.map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                ControlIoError::Closed
            } else {
                e.into()
            }
        })?;
        Ok(ControlMsg::decode(&payload)?)
    }
}
