//! The socket server: accepts connections (up to a cap), serves each with
//! its own task, expires idle sessions, and on shutdown stops accepting,
//! ends every connection, kills every session and removes the socket file.
//!
//! Only the listeners know their transport (`BoundSocket`: a Unix socket;
//! `BoundVsock`: vsock, `vsock` feature); `serve` and everything above it
//! work on any `Acceptor`.

use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::connection::{refuse, serve_connection};
use crate::error::ShellDaemonError;
use crate::session::SessionManager;

/// A bound Unix socket that removes its file when dropped.
#[derive(Debug)]
pub struct BoundSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl BoundSocket {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "could not remove the socket")
            }
        }
    }
}

/// Binds `path` (mode 0600). A stale socket file left by a crashed daemon
/// is replaced; a live daemon on the path is an error.
pub async fn bind_socket(path: &Path) -> Result<BoundSocket, ShellDaemonError> {
    let bind_error = |source| ShellDaemonError::Bind {
        path: path.to_path_buf(),
        source,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(bind_error(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            )));
        }
        if UnixStream::connect(path).await.is_ok() {
            return Err(ShellDaemonError::SocketInUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(bind_error)?;
    }
    let listener = UnixListener::bind(path).map_err(bind_error)?;
    let socket = BoundSocket {
        listener,
        path: path.to_path_buf(),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_error)?;
    Ok(socket)
}

/// Something that hands out client streams (a Unix or a vsock listener).
pub trait Acceptor: Send {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&mut self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

impl Acceptor for BoundSocket {
    type Stream = UnixStream;
    async fn accept(&mut self) -> io::Result<UnixStream> {
        self.listener.accept().await.map(|(stream, _)| stream)
    }
}

/// A vsock listener on every context id of this machine
/// (`VMADDR_CID_ANY`) and one port.
#[cfg(feature = "vsock")]
#[derive(Debug)]
pub struct BoundVsock {
    listener: tokio_vsock::VsockListener,
    port: u32,
}

#[cfg(feature = "vsock")]
impl BoundVsock {
    /// The port it listens on.
    pub fn port(&self) -> u32 {
        self.port
    }
}

/// `VMADDR_PORT_ANY`: asks the kernel for a free port, which a host could
/// not know to connect to.
#[cfg(feature = "vsock")]
const VSOCK_PORT_ANY: u32 = u32::MAX;

/// Binds vsock `port` on `VMADDR_CID_ANY` (the host reaches it at this
/// guest's context id).
#[cfg(feature = "vsock")]
pub fn bind_vsock(port: u32) -> Result<BoundVsock, ShellDaemonError> {
    let bind_error = |source| ShellDaemonError::BindVsock { port, source };
    if port == VSOCK_PORT_ANY {
        return Err(bind_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "this is the 'any port' wildcard; pick a fixed port the host can connect to",
        )));
    }
    let address = tokio_vsock::VsockAddr::new(tokio_vsock::VMADDR_CID_ANY, port);
    let listener = tokio_vsock::VsockListener::bind(address).map_err(bind_error)?;
    Ok(BoundVsock { listener, port })
}

#[cfg(feature = "vsock")]
impl Acceptor for BoundVsock {
    type Stream = tokio_vsock::VsockStream;
    async fn accept(&mut self) -> io::Result<tokio_vsock::VsockStream> {
        self.listener.accept().await.map(|(stream, _)| stream)
    }
}

/// How often idle sessions are looked for.
fn reap_interval(idle_timeout: Duration) -> Duration {
    (idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(30))
}

/// Serves until `shutdown` completes, then ends every connection and
/// session. Accept errors (e.g. out of file descriptors) are logged and
/// retried after a short pause; they never end the daemon.
pub async fn serve<A: Acceptor>(
    mut acceptor: A,
    manager: Arc<SessionManager>,
    shutdown: impl Future<Output = ()>,
) {
    let config = manager.config().clone();
    let stop = CancellationToken::new();
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let mut connections = JoinSet::new();
    let mut reaper = tokio::time::interval(reap_interval(config.idle_timeout));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = reaper.tick() => {
                manager.expire_idle(Instant::now());
            }
            Some(finished) = connections.join_next(), if !connections.is_empty() => {
                if let Err(error) = finished {
                    tracing::error!(%error, "a connection task failed");
                }
            }
            accepted = acceptor.accept() => match accepted {
                Ok(stream) => match Arc::clone(&permits).try_acquire_owned() {
                    Ok(permit) => {
                        let manager = Arc::clone(&manager);
                        let stop = stop.child_token();
                        connections.spawn(async move {
                            serve_connection(stream, manager, stop).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        let max = config.max_connections;
                        connections.spawn(refuse(stream, max, config.max_frame_bytes));
                    }
                },
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    tracing::info!("shutting down");
    stop.cancel();
    while connections.join_next().await.is_some() {}
    manager.shutdown().await;
}
