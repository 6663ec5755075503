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
    };
    (reader, pump.abort_handle())
}

pub(super) struct Reader {
    chunks: mpsc::Receiver<Result<Bytes, String>>,
    pending: Bytes,
}

impl AsyncRead for Reader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.pending.is_empty() {
            match self.chunks.poll_recv(cx) {
                Poll::Ready(Some(Ok(bytes))) => self.pending = bytes,
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Err(io::Error::other(format!(
                        "reading from the Docker Engine: {e}"
                    ))))
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())), // EOF
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = self.pending.len().min(buf.remaining());
        buf.put_slice(&self.pending[..n]);
        self.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}
