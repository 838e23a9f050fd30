//! Whole TLS flights in one write. rustls hands its pending records to the socket in one
//! vectored write (the client's ChangeCipherSpec and Finished, say), but tokio-postgres's
//! `Socket` does not implement vectored writes, so each record went out in its own system call
//! and its own TCP segment, and the server woke for each. [`GatherTls`] puts [`Gather`] between
//! the two: a vectored write is copied into one buffer (TLS records of a login are a few hundred
//! bytes) and written at once.

use std::{
    io::{self, IoSlice},
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::{
    tls::{MakeTlsConnect, TlsConnect},
    Socket,
};

/// The most one gathered write copies; what does not fit is left for the next write.
const MAX_GATHER: usize = 64 * 1024;

/// A stream whose vectored writes are single writes of the buffers joined.
pub struct Gather<S>(pub S);

impl<S: AsyncRead + Unpin> AsyncRead for Gather<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Gather<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        let (Some(first), Some(_)) = (filled.next(), filled.next()) else {
            // Zero or one buffer with bytes in it: nothing to join.
            let only = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return Pin::new(&mut self.0).poll_write(cx, only);
        };
        let mut joined = Vec::with_capacity(first.len().max(1024));
        for buf in bufs {
            if !joined.is_empty() && joined.len() + buf.len() > MAX_GATHER {
                break;
            }
            joined.extend_from_slice(buf);
        }
        // A short write reports how many of the joined bytes went out, which is what a
        // vectored write reports too: the caller resumes from there.
        Pin::new(&mut self.0).poll_write(cx, &joined)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A TLS connector for tokio-postgres that runs `T` over a [`Gather`]ed socket.
pub struct GatherTls<T>(pub T);

impl<T> MakeTlsConnect<Socket> for GatherTls<T>
where
    T: MakeTlsConnect<Gather<Socket>>,
{
    type Stream = T::Stream;
    type TlsConnect = GatherConnect<T::TlsConnect>;
    type Error = T::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        self.0.make_tls_connect(domain).map(GatherConnect)
    }
}

/// One connection's half of [`GatherTls`].
pub struct GatherConnect<T>(T);

impl<T: TlsConnect<Gather<Socket>>> TlsConnect<Socket> for GatherConnect<T> {
    type Stream = T::Stream;
    type Error = T::Error;
    type Future = T::Future;

    fn connect(self, stream: Socket) -> Self::Future {
        self.0.connect(Gather(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Records each write it is given; takes at most `limit` bytes of each.
    struct Writes {
        seen: Vec<Vec<u8>>,
        limit: usize,
    }

    impl AsyncWrite for Writes {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.limit);
            self.seen.push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn gather(limit: usize) -> Gather<Writes> {
        Gather(Writes {
            seen: Vec::new(),
            limit,
        })
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_vectored_write_is_one_write_of_all_its_buffers() {
        let mut stream = gather(usize::MAX);
        assert!(stream.is_write_vectored());
        let bufs = [
            IoSlice::new(b"\x14\x03\x03"),
            IoSlice::new(b""),
            IoSlice::new(b"finished"),
            IoSlice::new(b"startup"),
        ];
        let n = block_on(stream.write_vectored(&bufs)).unwrap();
        assert_eq!(n, 18);
        assert_eq!(stream.0.seen, vec![b"\x14\x03\x03finishedstartup".to_vec()]);
    }

    #[test]
    fn a_short_write_reports_the_bytes_that_went_out() {
        let mut stream = gather(5);
        let bufs = [IoSlice::new(b"abc"), IoSlice::new(b"defgh")];
        assert_eq!(block_on(stream.write_vectored(&bufs)).unwrap(), 5);
        assert_eq!(stream.0.seen, vec![b"abcde".to_vec()]);
        // write_all over the rest: every byte once, in order.
        let mut stream = gather(3);
        block_on(stream.write_all(b"0123456789")).unwrap();
        assert_eq!(stream.0.seen.concat(), b"0123456789");
    }

    #[test]
    fn one_buffer_is_written_as_it_is_and_big_ones_are_not_joined_past_the_limit() {
        let mut stream = gather(usize::MAX);
        let bufs = [IoSlice::new(b""), IoSlice::new(b"only")];
        assert_eq!(block_on(stream.write_vectored(&bufs)).unwrap(), 4);
        let big = vec![7u8; MAX_GATHER];
        let bufs = [IoSlice::new(b"head"), IoSlice::new(&big)];
        assert_eq!(block_on(stream.write_vectored(&bufs)).unwrap(), 4);
        assert_eq!(stream.0.seen, vec![b"only".to_vec(), b"head".to_vec()]);
    }
}
