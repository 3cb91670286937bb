//! Where the gateway listens: the endpoint file the guest writes
//! (`<workspace>/tmp/gateway-endpoint`, format `types::protocol::gateway::
//! GatewayEndpoint`) or a URL and token given directly.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use types::protocol::gateway::GatewayEndpoint;

use crate::error::ChannelsError;

/// The endpoint file's path inside a user's workspace
/// (`<workspace_root>/<user_id>`).
pub fn endpoint_file_in(user_workspace: &Path) -> PathBuf {
    user_workspace.join("tmp").join(GatewayEndpoint::FILE_NAME)
}

/// Reads and parses an endpoint file. A missing file is its own error
/// (`EndpointMissing`): it means the guest is not running.
pub async fn read_endpoint_file(path: &Path) -> Result<GatewayEndpoint, ChannelsError> {
    let text = tokio::fs::read_to_string(path).await.map_err(|err| {
        if err.kind() == ErrorKind::NotFound {
            ChannelsError::EndpointMissing {
                path: path.to_owned(),
            }
        } else {
            ChannelsError::EndpointUnreadable {
                path: path.to_owned(),
                message: err.to_string(),
            }
        }
    })?;
    let endpoint =
        GatewayEndpoint::parse(&text).map_err(|err| ChannelsError::EndpointMalformed {
            path: path.to_owned(),
            message: err.to_string(),
        })?;
    if !(endpoint.url.starts_with("ws://") || endpoint.url.starts_with("wss://")) {
        return Err(ChannelsError::EndpointMalformed {
            path: path.to_owned(),
            message: format!("url '{}' is not a ws:// or wss:// URL", endpoint.url),
        });
    }
    Ok(endpoint)
}

/// How the client finds the gateway, on the first connection and on every
/// reconnection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointSource {
    /// Read the endpoint file again before every connection attempt, so a
    /// guest restarted on another port (with a new token) is found again.
    File(PathBuf),
    /// A fixed URL and token (`--url` + `--token`).
    Fixed(GatewayEndpoint),
}

impl EndpointSource {
    /// The endpoint to connect to now.
    pub async fn resolve(&self) -> Result<GatewayEndpoint, ChannelsError> {
        match self {
            Self::File(path) => read_endpoint_file(path).await,
            Self::Fixed(endpoint) => Ok(endpoint.clone()),
        }
    }
}
