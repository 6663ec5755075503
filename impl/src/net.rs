//! Transports: the server is generic over [`Net`], so the same code serves real
//! sockets ([`TokioNet`]) and turmoil's simulated network ([`TurmoilNet`], feature
//! `turmoil`). Nothing else in the crate names a socket type.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

/// A connected byte stream.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Reads without consuming, to tell TLS from plain HTTP on the TLS port (EX-7).
    fn peek<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a;
}

/// A bound listening socket.
pub trait Listener: Send + Sync + 'static {
    type Stream: Stream;
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// A network: how to listen and how to dial.
pub trait Net: Clone + Send + Sync + 'static {
    type Stream: Stream;
    type Listener: Listener<Stream = Self::Stream>;
    fn bind(&self, addr: &str) -> impl Future<Output = io::Result<Self::Listener>> + Send;
    fn connect(&self, addr: &str) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Real sockets.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioNet;

impl Stream for tokio::net::TcpStream {
    fn peek<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a {
        tokio::net::TcpStream::peek(self, buf)
    }
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept(&self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, peer) = tokio::net::TcpListener::accept(self).await?;
        // Keystrokes are tiny writes: Nagle would add up to 40 ms to each echo.
        stream.set_nodelay(true)?;
        Ok((stream, peer))
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::TcpListener::local_addr(self)
    }
}

impl Net for TokioNet {
    type Stream = tokio::net::TcpStream;
    type Listener = tokio::net::TcpListener;
    async fn bind(&self, addr: &str) -> io::Result<Self::Listener> {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("binding {addr}: {e}")))
    }
    async fn connect(&self, addr: &str) -> io::Result<Self::Stream> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("connecting to {addr}: {e}")))?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

#[cfg(feature = "turmoil")]
pub use sim::TurmoilNet;

#[cfg(feature = "turmoil")]
mod sim {
    use super::*;

    /// turmoil's simulated network: hosts are names, time is virtual.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct TurmoilNet;

    impl Stream for turmoil::net::TcpStream {
        fn peek<'a>(
            &'a mut self,
            buf: &'a mut [u8],
        ) -> impl Future<Output = io::Result<usize>> + Send + 'a {
            turmoil::net::TcpStream::peek(self, buf)
        }
    }

    impl Listener for turmoil::net::TcpListener {
        type Stream = turmoil::net::TcpStream;
        async fn accept(&self) -> io::Result<(Self::Stream, SocketAddr)> {
            turmoil::net::TcpListener::accept(self).await
        }
        fn local_addr(&self) -> io::Result<SocketAddr> {
            turmoil::net::TcpListener::local_addr(self)
        }
    }

    impl Net for TurmoilNet {
        type Stream = turmoil::net::TcpStream;
        type Listener = turmoil::net::TcpListener;
        async fn bind(&self, addr: &str) -> io::Result<Self::Listener> {
            // turmoil binds only to the unspecified address or the host's own.
            let port = addr.rsplit_once(':').map(|(_, p)| p).unwrap_or(addr);
            let port: u16 = port.parse().map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("{addr} has no port"))
            })?;
            turmoil::net::TcpListener::bind(("0.0.0.0", port)).await
        }
        async fn connect(&self, addr: &str) -> io::Result<Self::Stream> {
            turmoil::net::TcpStream::connect(addr)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("connecting to {addr}: {e}")))
        }
    }
}
