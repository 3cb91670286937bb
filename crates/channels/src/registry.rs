//! `ChannelRegistry`: the channel adapters of one gateway by id, and
//! `collect_channel_health`, a snapshot of all their health checks.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use types::Channel;
use types::channel::ChannelHealthStatus;

use crate::error::ChannelsError;

/// Channel adapters by id (`"tui"`, `"telegram"`, …).
///
/// The lock is a `std` lock held only to clone the map's `Arc`s, never
/// across an `.await`, so a slow adapter can never block registration.
#[derive(Default)]
pub struct ChannelRegistry {
    channels: RwLock<BTreeMap<String, Arc<dyn Channel>>>,
}

impl fmt::Debug for ChannelRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelRegistry")
            .field("ids", &self.ids())
            .finish()
    }
}

impl ChannelRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an adapter. An id that is already taken is refused, so one
    /// adapter can never silently replace another.
    pub fn register(
        &self,
        id: impl Into<String>,
        channel: Arc<dyn Channel>,
    ) -> Result<(), ChannelsError> {
        let id = id.into();
        // A poisoned lock only means a panic happened while another thread
        // held it; the map itself is always left consistent (single insert
        // or remove), so its contents are still valid.
        let mut channels = self
            .channels
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if channels.contains_key(&id) {
            return Err(ChannelsError::DuplicateChannel { id });
        }
        channels.insert(id, channel);
        Ok(())
    }

    /// Removes an adapter and returns it (to be shut down by the caller).
    pub fn remove(&self, id: &str) -> Option<Arc<dyn Channel>> {
        self.channels
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }

    pub fn get(&self, id: &str) -> Option<Arc<dyn Channel>> {
        self.channels
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// The registered ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        self.channels
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.channels
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the map, taken under the lock and used after releasing it.
    fn snapshot(&self) -> Vec<(String, Arc<dyn Channel>)> {
        self.channels
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(id, channel)| (id.clone(), Arc::clone(channel)))
            .collect()
    }
}

/// Runs every registered adapter's health check concurrently, each bounded
/// by `timeout`, and returns the results by id. A failing check becomes
/// `Unhealthy` with the error as its reason and a check that does not
/// answer in time becomes `Unhealthy` saying so, so one broken adapter
/// never hides the others' status.
pub async fn collect_channel_health(
    registry: &ChannelRegistry,
    timeout: Duration,
) -> BTreeMap<String, ChannelHealthStatus> {
    let checks = registry
        .snapshot()
        .into_iter()
        .map(|(id, channel)| async move {
            let status = match tokio::time::timeout(timeout, channel.health_check()).await {
                Ok(Ok(status)) => status,
                Ok(Err(err)) => ChannelHealthStatus::Unhealthy {
                    reason: err.to_string(),
                },
                Err(_) => ChannelHealthStatus::Unhealthy {
                    reason: format!(
                        "health check did not answer within {} ms",
                        timeout.as_millis()
                    ),
                },
            };
            (id, status)
        });
    futures::future::join_all(checks)
        .await
        .into_iter()
        .collect()
}
