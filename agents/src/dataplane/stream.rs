//! Byte streams (TCP, TLS over TCP, a QUIC stream): each message is a
//! length-prefixed frame.

use std::io;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use transbench_wire::frame::PREFIX_LEN;
use transbench_wire::{LengthPrefix, MessageHeader, MessageKind, TrialToken};

use super::{RequestSink, ResponseSource, ServeCounters};
use crate::clock::mono_now_ns;
use crate::read_growing::read_exact_growing;

pub struct StreamSink<W> {
    w: W,
    frame: Vec<u8>,
}

pub struct StreamSource<R> {
    r: R,
    framing: LengthPrefix,
    buf: Vec<u8>,
}

pub fn client<R, W>(r: R, w: W, size: usize) -> (StreamSink<W>, StreamSource<R>) {
    let framing = LengthPrefix::new(size as u32);
    let mut frame = Vec::with_capacity(PREFIX_LEN + size);
    framing
        .encode(&vec![0u8; size], &mut frame)
        .expect("size is validated against the frame limit");
    (
        StreamSink { w, frame },
        StreamSource {
            r,
            framing,
            buf: vec![0; size],
        },
    )
}

impl<W: AsyncWrite + Unpin + Send + 'static> RequestSink for StreamSink<W> {
    const FATAL_ERRORS: bool = true;

    async fn send(&mut self, header: MessageHeader) -> io::Result<()> {
        header.encode(&mut self.frame[PREFIX_LEN..]);
        self.w.write_all(&self.frame).await?;
        self.w.flush().await
    }
}

impl<R: AsyncRead + Unpin + Send + 'static> ResponseSource for StreamSource<R> {
    async fn recv(&mut self) -> io::Result<(MessageHeader, u64)> {
        read_frame(&mut self.r, self.framing, &mut self.buf)
            .await?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "receiver closed the stream"))?;
        let t = mono_now_ns();
        let h = MessageHeader::decode(&self.buf).map_err(invalid)?;
        if h.kind != MessageKind::Response {
            return Err(invalid("receiver sent a request where a response was due"));
        }
        Ok((h, t))
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Reads one frame into `buf` (replacing what it held); `None` on a clean
/// end of stream between frames. A length beyond `framing`'s limit is
/// refused before anything is read for it, and `buf` grows only with the
/// bytes that arrive.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    framing: LengthPrefix,
    buf: &mut Vec<u8>,
) -> io::Result<Option<()>> {
    let mut prefix = [0u8; PREFIX_LEN];
    let mut got = 0;
    while got < PREFIX_LEN {
        let n = r.read(&mut prefix[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        got += n;
    }
    let len = framing.decode_len(prefix).map_err(invalid)?;
    buf.clear();
    read_exact_growing(r, buf, len).await?;
    Ok(Some(()))
}

/// Answers every request on one stream until the peer ends it. The stream
/// comes from the trial's sender (it showed the trial's token): a frame
/// that is not one of the trial's requests is discarded, and closes the
/// stream.
pub async fn serve<R, W>(
    mut r: R,
    mut w: W,
    size: usize,
    token: TrialToken,
    counters: Arc<ServeCounters>,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let framing = LengthPrefix::new(size as u32);
    let mut buf = Vec::with_capacity(PREFIX_LEN + size);
    let mut msg = Vec::with_capacity(size);
    loop {
        match read_frame(&mut r, framing, &mut msg).await {
            Ok(Some(())) => {}
            Ok(None) => return Ok(()),
            Err(e) => {
                // A frame too long for the trial is garbage; a reset or an
                // end of stream is just the peer going away.
                if e.kind() == io::ErrorKind::InvalidData {
                    counters.discarded();
                }
                return Err(e);
            }
        }
        let h = match MessageHeader::decode(&msg) {
            Ok(h) if h.kind == MessageKind::Request && h.token == token => h,
            _ => {
                counters.discarded();
                return Err(invalid("peer sent a frame that is not a transbench request"));
            }
        };
        counters.request_arrived(&h, msg.len());
        h.response().encode(&mut msg);
        buf.clear();
        framing.encode(&msg, &mut buf).map_err(invalid)?;
        w.write_all(&buf).await?;
        w.flush().await?;
        counters.response();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: TrialToken = TrialToken::from_bytes(*b"trial-42");

    #[tokio::test]
    async fn client_and_server_exchange_over_a_duplex_pipe() {
        let (client_io, server_io) = tokio::io::duplex(4096);
        let counters = Arc::new(ServeCounters::default());
        let (sr, sw) = tokio::io::split(server_io);
        let server = tokio::spawn(serve(sr, sw, 100, T, counters.clone()));
        let (cr, cw) = tokio::io::split(client_io);
        let (mut sink, mut source) = client(cr, cw, 100);
        for seq in 0..5 {
            sink.send(MessageHeader::request(T, 0, seq, 7)).await.unwrap();
            let (h, _) = source.recv().await.unwrap();
            assert_eq!((h.kind, h.seq, h.t_intended_ns), (MessageKind::Response, seq, 7));
        }
        drop(sink);
        drop(source);
        server.await.unwrap().unwrap();
        let report = counters.report(0);
        assert_eq!((report.requests, report.responses, report.bytes), (5, 5, 500));
    }

    #[tokio::test]
    async fn a_claimed_length_is_not_allocated_before_its_bytes_come() {
        let (mut peer, mut ours) = tokio::io::duplex(4096);
        let framing = LengthPrefix::new(16 << 20);
        peer.write_all(&(16u32 << 20).to_be_bytes()).await.unwrap();
        peer.write_all(&[1; 10]).await.unwrap();
        drop(peer);
        let mut buf = Vec::new();
        let e = read_frame(&mut ours, framing, &mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(
            buf.capacity() <= crate::read_growing::READ_CHUNK,
            "{}",
            buf.capacity()
        );
        // Beyond the trial's size: refused before any byte is read for it.
        let (mut peer, mut ours) = tokio::io::duplex(4096);
        peer.write_all(&101u32.to_be_bytes()).await.unwrap();
        let e = read_frame(&mut ours, LengthPrefix::new(100), &mut buf)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn server_closes_on_garbage() {
        let (mut client_io, server_io) = tokio::io::duplex(4096);
        let counters = Arc::new(ServeCounters::default());
        let (sr, sw) = tokio::io::split(server_io);
        let server = tokio::spawn(serve(sr, sw, 100, T, counters.clone()));
        client_io.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(server.await.unwrap().is_err());
        assert_eq!(counters.report(0).discarded, 1);
    }

    #[tokio::test]
    async fn a_request_of_another_trial_is_not_answered() {
        let (client_io, server_io) = tokio::io::duplex(4096);
        let counters = Arc::new(ServeCounters::default());
        let (sr, sw) = tokio::io::split(server_io);
        let server = tokio::spawn(serve(sr, sw, 100, T, counters.clone()));
        let (cr, cw) = tokio::io::split(client_io);
        let (mut sink, mut source) = client(cr, cw, 100);
        let other = TrialToken::from_bytes(*b"trial-43");
        sink.send(MessageHeader::request(other, 0, 1, 7)).await.unwrap();
        assert!(server.await.unwrap().is_err());
        assert!(source.recv().await.is_err(), "answered");
        let report = counters.report(0);
        assert_eq!((report.requests, report.responses, report.discarded), (0, 0, 1));
    }
}
