//! Input waiting for the terminal (WS-8): a bounded queue between the frame
//! reader and the terminal writer.
//!
//! A terminal that does not read (a foreground `sleep 100` under a paste) must
//! not stop the server from reading the WebSocket: Pings, Pongs and Close keep
//! being read and answered while the queue drains at the terminal's pace. Only
//! once [`INPUT_QUEUE_BYTES`] wait does the reader pause (TCP backpressure).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

/// The reader takes another message while less than this waits, so at most
/// this plus one message (`MAX_MESSAGE`) is queued: a whole 1 MiB paste always
/// fits.
pub const INPUT_QUEUE_BYTES: usize = super::MAX_MESSAGE;

/// Queued input of one connection. The frame reader pushes, the terminal
/// writer drains; both run in the connection's task.
pub(super) struct InputQueue {
    queued: Mutex<Queued>,
    /// Signalled when input was pushed (the writer waits on it).
    pushed: Notify,
    /// Signalled when input was written (the reader waits on it when full).
    drained: Notify,
}

#[derive(Default)]
struct Queued {
    chunks: VecDeque<Bytes>,
    bytes: usize,
}

impl InputQueue {
    pub(super) fn new() -> Self {
        InputQueue {
            queued: Mutex::new(Queued::default()),
            pushed: Notify::new(),
            drained: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queued> {
        // Only pushes and pops happen under the lock: it stays consistent.
        self.queued.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn has_room(&self) -> bool {
        self.lock().bytes < INPUT_QUEUE_BYTES
    }

    /// Resolves once the reader may take another message.
    pub(super) async fn room(&self) {
        // Notify keeps one permit: a drain between the check and the wait is not lost.
        while !self.has_room() {
            self.drained.notified().await;
        }
    }

    pub(super) fn push(&self, input: Bytes) {
        if input.is_empty() {
            return;
        }
        let mut queued = self.lock();
        queued.bytes += input.len();
        queued.chunks.push_back(input);
        drop(queued);
        self.pushed.notify_one();
    }

    /// `written` bytes of the front chunk reached the terminal.
    fn consume(&self, written: usize) {
        let mut queued = self.lock();
        queued.bytes -= written;
        if let Some(front) = queued.chunks.front_mut() {
            front.advance(written);
            if front.is_empty() {
                queued.chunks.pop_front();
            }
        }
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Writes queued input into the terminal as fast as it takes it. Never
    /// ends: once the terminal refuses input (its processes are gone), input
    /// is dropped, so that the reader goes on answering control frames until
    /// the relay ends on the shell's exit.
    pub(super) async fn drain_into(
        &self,
        writer: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Infallible {
        let mut terminal_gone = false;
        loop {
            let front = self.lock().chunks.front().cloned();
            let Some(chunk) = front else {
                self.pushed.notified().await;
                continue;
            };
            let written = if terminal_gone {
                chunk.len()
            } else {
                // Part of a chunk at a time: the reader gets room as soon as
                // the terminal takes something.
                match writer.write(&chunk).await {
                    Ok(0) | Err(_) => {
                        terminal_gone = true;
                        chunk.len()
                    }
                    Ok(n) => n,
                }
            };
            self.consume(written);
            if !terminal_gone {
                let _ = writer.flush().await;
            }
            self.drained.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_has_no_room_until_the_terminal_takes_input() {
        let queue = InputQueue::new();
        let (mut terminal, inside) = tokio::io::duplex(1024);
        let (_, mut writer) = tokio::io::split(inside);
        queue.push(Bytes::from(vec![b'x'; INPUT_QUEUE_BYTES + 4096]));
        tokio::select! {
            never = queue.drain_into(&mut writer) => match never {},
            _ = queue.room() => panic!("room while the terminal reads nothing"),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        // 1 KiB went into the terminal's buffer; the rest still waits.
        assert_eq!(queue.bytes(), INPUT_QUEUE_BYTES + 3072);
        let reading = async {
            let mut buf = vec![0; 1024];
            while terminal.read(&mut buf).await.is_ok() {}
        };
        tokio::select! {
            never = queue.drain_into(&mut writer) => match never {},
            _ = queue.room() => {}
            _ = reading => panic!("the terminal's input ended"),
        }
        assert!(queue.bytes() < INPUT_QUEUE_BYTES);
    }

    #[tokio::test(start_paused = true)]
    async fn input_reaches_the_terminal_in_order() {
        let queue = InputQueue::new();
        let (mut terminal, inside) = tokio::io::duplex(1 << 16);
        let (_, mut writer) = tokio::io::split(inside);
        queue.push(Bytes::from_static(b"echo "));
        queue.push(Bytes::new());
        queue.push(Bytes::from_static(b"hi\r"));
        let mut read = vec![0; 8];
        tokio::select! {
            never = queue.drain_into(&mut writer) => match never {},
            r = terminal.read_exact(&mut read) => { r.unwrap(); }
        }
        assert_eq!(&read, b"echo hi\r");
    }

    #[tokio::test(start_paused = true)]
    async fn input_for_a_gone_terminal_is_dropped() {
        let queue = InputQueue::new();
        let (terminal, inside) = tokio::io::duplex(16);
        drop(terminal);
        let (_, mut writer) = tokio::io::split(inside);
        queue.push(Bytes::from(vec![b'x'; INPUT_QUEUE_BYTES]));
        tokio::select! {
            never = queue.drain_into(&mut writer) => match never {},
            _ = queue.room() => {}
        }
        assert_eq!(queue.bytes(), 0);
    }
}
