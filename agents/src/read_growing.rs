//! Reading a length a peer announced: the buffer grows with the bytes that
//! arrive, never with the number the peer claims. A 4-byte prefix that
//! says 16 MiB and nothing after it costs one [`READ_CHUNK`] of address
//! space, not 16 MiB of zeroed memory.

use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The most a read asks for at once, and so the most a buffer runs ahead
/// of what has arrived.
pub const READ_CHUNK: usize = 64 * 1024;

/// Appends up to `len` bytes from `r` to `buf`, as they arrive; stops
/// early only at the end of the stream. Returns how many it appended.
/// The buffer's capacity stays within twice what it holds plus
/// [`READ_CHUNK`], and a buffer reused for messages of one size is not
/// grown again.
pub async fn read_growing<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
    len: usize,
) -> io::Result<usize> {
    let mut got = 0;
    while got < len {
        let wanted = len - got;
        // Grown only when full: by doubling, or by a chunk at most.
        if buf.len() == buf.capacity() {
            buf.reserve(wanted.min(READ_CHUNK));
        }
        // Take: never past this message, into the next one's bytes.
        let n = (&mut *r).take(wanted as u64).read_buf(buf).await?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

/// [`read_growing`], where an end of stream before `len` bytes is an error.
pub async fn read_exact_growing<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
    len: usize,
) -> io::Result<()> {
    if read_growing(r, buf, len).await? < len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_claim_without_bytes_costs_one_chunk() {
        let (mut peer, mut ours) = tokio::io::duplex(1 << 20);
        peer.write_all(&[7u8; 100]).await.unwrap();
        drop(peer);
        let mut buf = Vec::new();
        let got = read_growing(&mut ours, &mut buf, 16 << 20).await.unwrap();
        assert_eq!(got, 100);
        assert_eq!(buf, vec![7u8; 100]);
        assert!(buf.capacity() <= READ_CHUNK, "{}", buf.capacity());
    }

    #[tokio::test]
    async fn grows_with_what_arrives_and_stops_at_the_message() {
        let (mut peer, mut ours) = tokio::io::duplex(1 << 16);
        let message: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let sent = message.clone();
        let writer = tokio::spawn(async move {
            peer.write_all(&sent).await.unwrap();
            peer.write_all(b"next").await.unwrap();
            peer
        });
        let mut buf = b"kept".to_vec();
        read_exact_growing(&mut ours, &mut buf, message.len())
            .await
            .unwrap();
        assert_eq!(&buf[..4], b"kept");
        assert_eq!(&buf[4..], &message[..]);
        assert!(buf.capacity() <= 2 * buf.len() + READ_CHUNK, "{}", buf.capacity());
        let _peer = writer.await.unwrap();
        let mut next = Vec::new();
        read_exact_growing(&mut ours, &mut next, 4).await.unwrap();
        assert_eq!(next, b"next");
    }

    #[tokio::test]
    async fn an_early_end_is_an_error_only_where_asked() {
        let (mut peer, mut ours) = tokio::io::duplex(64);
        peer.write_all(b"abc").await.unwrap();
        drop(peer);
        let mut buf = Vec::new();
        let e = read_exact_growing(&mut ours, &mut buf, 10).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(buf, b"abc");
    }
}
