//! The engine's output (a stream of framed chunks) as an `AsyncRead`.
//!
//! A task pumps the chunks into a small channel; the reader ends (EOF) when
//! the engine's stream ends and `at_end` resolves, or when the pump is
//! aborted, which is how a terminal is ended from its control while the relay
//! owns the reader.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bollard::container::LogOutput;
use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// Chunks in flight between the pump and the reader: the engine's connection
/// is the buffer; this only decouples them.
const CHUNKS: usize = 16;

pub(super) type Output =
    Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// Starts the pump; returns the reader and the handle that ends it.
pub(super) fn reader(
    mut output: Output,
    at_end: impl std::future::Future<Output = ()> + Send + 'static,
) -> (Reader, AbortHandle) {
    let (tx, rx) = mpsc::channel(CHUNKS);
    let pump = tokio::spawn(async move {
        let mut failure = None;
        while let Some(chunk) = output.next().await {
            let bytes = match chunk {
                Ok(chunk) => chunk.into_bytes(),
                // A connection cut when the container stops is its end too.
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            };
            if tx.send(Ok(bytes)).await.is_err() {
                return; // the reader is gone
            }
        }
        at_end.await;
        if let Some(e) = failure {
            let _ = tx.send(Err(e)).await;
        }
    });
    let reader = Reader {
        chunks: rx,
        pending: Bytes::new(),
        failed: None,
    };
    (reader, pump.abort_handle())
}

pub(super) struct Reader {
    chunks: mpsc::Receiver<Result<Bytes, String>>,
    pending: Bytes,
    /// An engine error that came after bytes still to be read: reported next.
    failed: Option<String>,
}

impl AsyncRead for Reader {
    /// Fills `buf` with every chunk already there, not just one: the engine
    /// splits a TTY's output into lines (a few bytes each under `yes`), and a
    /// read per line would cost the relay a WebSocket frame per line.
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending[..n]);
                self.pending.advance(n);
                if buf.remaining() == 0 {
                    return Poll::Ready(Ok(()));
                }
            }
            let read_some = buf.filled().len() > before;
            if let Some(e) = self.failed.take() {
                if read_some {
                    // The bytes before the error first.
                    self.failed = Some(e);
                    return Poll::Ready(Ok(()));
                }
                return Poll::Ready(Err(io::Error::other(format!(
                    "reading from the Docker Engine: {e}"
                ))));
            }
            match self.chunks.poll_recv(cx) {
                Poll::Ready(Some(Ok(bytes))) => self.pending = bytes,
                Poll::Ready(Some(Err(e))) => self.failed = Some(e),
                // EOF, or what was there so far.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending if read_some => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn lines(n: usize) -> Output {
        let chunks = (0..n).map(|_| {
            Ok(LogOutput::Console {
                message: Bytes::from_static(b"y\r\n"),
            })
        });
        Box::pin(futures_util::stream::iter(chunks.collect::<Vec<_>>()))
    }

    /// One read takes every line the engine already sent, not one line.
    #[tokio::test]
    async fn a_read_takes_every_chunk_already_there() {
        let (mut reader, _pump) = reader(lines(10), async {});
        // Let the pump queue all ten (the channel holds 16).
        tokio::task::yield_now().await;
        while reader.chunks.len() < 10 {
            tokio::task::yield_now().await;
        }
        let mut buf = [0u8; 1024];
        let n = reader.read(&mut buf).await.unwrap();
        assert_eq!(n, 30, "{:?}", String::from_utf8_lossy(&buf[..n]));
        assert_eq!(reader.read(&mut buf).await.unwrap(), 0, "then EOF");
    }

    /// An engine error after output: the output is read first, then the error.
    #[tokio::test]
    async fn an_error_comes_after_the_bytes_before_it() {
        let chunks: Vec<Result<LogOutput, bollard::errors::Error>> = vec![
            Ok(LogOutput::Console {
                message: Bytes::from_static(b"last words"),
            }),
            Err(bollard::errors::Error::DockerStreamError {
                error: "connection reset".into(),
            }),
        ];
        let (mut reader, _pump) = reader(Box::pin(futures_util::stream::iter(chunks)), async {});
        while reader.chunks.len() < 2 {
            tokio::task::yield_now().await;
        }
        let mut buf = [0u8; 64];
        let n = reader.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"last words");
        let err = reader.read(&mut buf).await.unwrap_err();
        assert!(err.to_string().contains("connection reset"), "{err}");
    }
}
