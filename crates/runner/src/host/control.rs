//! The control socket: the client used by `stop` / `status` (and by a
//! starting runner that checks nobody else serves the user), and the
//! per-connection handler of the supervisor. Frames are
//! `types::protocol::framing::FrameCodec`; payloads are the typed JSON of
//! `types::protocol::control`.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::UnixStream;
use tokio_util::codec::Framed;
use types::protocol::control::{ControlRequest, ControlResponse, MAX_CONTROL_FRAME_BYTES};
use types::protocol::framing::FrameCodec;

use super::HostError;

/// How long a request may take to be answered.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What is at the control socket path.
#[derive(Debug)]
pub enum SocketProbe {
    /// A supervisor answered.
    Live(ControlClient),
    /// A socket file nobody listens on (a supervisor that was killed).
    Stale,
    /// No socket file.
    Absent,
}

/// Finds out whether a supervisor answers at `socket`.
pub async fn probe(socket: &Path) -> Result<SocketProbe, HostError> {
    match UnixStream::connect(socket).await {
        Ok(stream) => Ok(SocketProbe::Live(ControlClient::new(socket, stream))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(SocketProbe::Absent),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Ok(SocketProbe::Stale),
        Err(e) => Err(HostError::Control {
            socket: socket.to_owned(),
            message: format!("cannot connect: {e}"),
        }),
    }
}

/// A connection to a supervisor.
#[derive(Debug)]
pub struct ControlClient {
    socket: PathBuf,
    framed: Framed<UnixStream, FrameCodec>,
}

impl ControlClient {
    fn new(socket: &Path, stream: UnixStream) -> Self {
        Self {
            socket: socket.to_owned(),
            framed: Framed::new(stream, FrameCodec::new(MAX_CONTROL_FRAME_BYTES)),
        }
    }

    /// Sends one request and reads its answer.
    pub async fn request(&mut self, request: ControlRequest) -> Result<ControlResponse, HostError> {
        let socket = self.socket.clone();
        let error = |message: String| HostError::Control {
            socket: socket.clone(),
            message,
        };
        let payload = serde_json::to_vec(&request)
            .map_err(|e| error(format!("cannot encode the request: {e}")))?;
        let exchange = async {
            self.framed
                .send(Bytes::from(payload))
                .await
                .map_err(|e| error(format!("cannot send: {e}")))?;
            let frame = self
                .framed
                .next()
                .await
                .ok_or_else(|| error("the supervisor closed the connection".to_owned()))?
                .map_err(|e| error(e.to_string()))?;
            serde_json::from_slice::<ControlResponse>(&frame)
                .map_err(|e| error(format!("unexpected answer: {e}")))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| error(format!("no answer within {REQUEST_TIMEOUT:?}")))?
    }
}

/// Serves one client connection: each frame is a request, answered by
/// `answer`. A request that is not valid JSON for `ControlRequest` gets an
/// `Error` answer; a framing error or a closed connection ends it.
pub async fn serve_connection<F>(stream: UnixStream, mut answer: F)
where
    F: FnMut(ControlRequest) -> ControlResponse,
{
    let mut framed = Framed::new(stream, FrameCodec::new(MAX_CONTROL_FRAME_BYTES));
    while let Some(Ok(frame)) = framed.next().await {
        let response = match serde_json::from_slice::<ControlRequest>(&frame) {
            Ok(request) => answer(request),
            Err(e) => ControlResponse::Error {
                message: format!("not a control request: {e}"),
            },
        };
        let Ok(payload) = serde_json::to_vec(&response) else {
            return;
        };
        if framed.send(Bytes::from(payload)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;
    use types::protocol::control::HealthReport;

    #[tokio::test]
    async fn requests_are_answered_and_garbage_gets_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        assert!(matches!(probe(&path).await.unwrap(), SocketProbe::Absent));
        let listener = UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            serve_connection(stream, |request| match request {
                ControlRequest::Health => ControlResponse::Health(HealthReport {
                    supervisor_pid: 42,
                    guest_ready: false,
                }),
                ControlRequest::Status | ControlRequest::Shutdown => ControlResponse::ShuttingDown,
            })
            .await;
        });
        let SocketProbe::Live(mut client) = probe(&path).await.unwrap() else {
            panic!("the listener is live");
        };
        let ControlResponse::Health(report) = client.request(ControlRequest::Health).await.unwrap()
        else {
            panic!("health answers health");
        };
        assert_eq!(report.supervisor_pid, 42);
        // A well-framed payload that is no request: answered, connection kept.
        client
            .framed
            .send(Bytes::from_static(b"{\"type\":\"reboot\"}"))
            .await
            .unwrap();
        let answer = client.framed.next().await.unwrap().unwrap();
        let answer: ControlResponse = serde_json::from_slice(&answer).unwrap();
        assert!(
            matches!(&answer, ControlResponse::Error { message } if message.contains("reboot")),
            "{answer:?}"
        );
        assert_eq!(
            client.request(ControlRequest::Shutdown).await.unwrap(),
            ControlResponse::ShuttingDown
        );
        drop(client);
        server.await.unwrap();
        // The socket file stays behind with nobody listening.
        assert!(matches!(probe(&path).await.unwrap(), SocketProbe::Stale));
    }
}
