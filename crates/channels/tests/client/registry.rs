//! `ChannelRegistry` and `collect_channel_health` with adapters whose
//! health checks answer, fail, or hang.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use channels::{ChannelRegistry, ChannelsError, collect_channel_health};
use types::Channel;
use types::channel::{ChannelHealthStatus, ChannelListenStream, ChannelOutboundEvent};
use types::error::ChannelError;

/// An adapter that keeps what it is sent and reports a fixed health.
enum Health {
    Answers(ChannelHealthStatus),
    Fails,
    Hangs,
}

struct TestAdapter {
    health: Health,
    delivered: Mutex<Vec<ChannelOutboundEvent>>,
}

impl TestAdapter {
    fn new(health: Health) -> Arc<Self> {
        Arc::new(Self {
            health,
            delivered: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl Channel for TestAdapter {
    async fn send(&self, event: ChannelOutboundEvent) -> Result<(), ChannelError> {
        self.delivered.lock().unwrap().push(event);
        Ok(())
    }

    async fn listen(&self, buffer_size: usize) -> Result<ChannelListenStream, ChannelError> {
        let (_tx, rx) = tokio::sync::mpsc::channel(buffer_size);
        Ok(rx)
    }

    async fn health_check(&self) -> Result<ChannelHealthStatus, ChannelError> {
        match &self.health {
            Health::Answers(status) => Ok(status.clone()),
            Health::Fails => Err(ChannelError::Transport("bot API returned 502".into())),
            Health::Hangs => std::future::pending().await,
        }
    }
}

#[test]
fn adapters_are_registered_once_by_id() {
    let registry = ChannelRegistry::new();
    assert!(registry.is_empty());
    registry
        .register(
            "tui",
            TestAdapter::new(Health::Answers(ChannelHealthStatus::Healthy)),
        )
        .unwrap();
    registry
        .register("telegram", TestAdapter::new(Health::Fails))
        .unwrap();
    let err = registry
        .register("tui", TestAdapter::new(Health::Fails))
        .unwrap_err();
    assert_eq!(err, ChannelsError::DuplicateChannel { id: "tui".into() });
    assert_eq!(registry.ids(), ["telegram", "tui"]);
    assert_eq!(registry.len(), 2);
    assert!(registry.get("tui").is_some());
    assert!(registry.remove("telegram").is_some());
    assert!(registry.get("telegram").is_none());
    assert_eq!(
        format!("{registry:?}"),
        "ChannelRegistry { ids: [\"tui\"] }"
    );
}

#[tokio::test]
async fn health_is_collected_from_every_adapter_even_when_some_fail_or_hang() {
    let registry = ChannelRegistry::new();
    let healthy = TestAdapter::new(Health::Answers(ChannelHealthStatus::Healthy));
    registry.register("tui", healthy.clone()).unwrap();
    registry
        .register(
            "slack",
            TestAdapter::new(Health::Answers(ChannelHealthStatus::Degraded {
                reason: "rate limited".into(),
            })),
        )
        .unwrap();
    registry
        .register("telegram", TestAdapter::new(Health::Fails))
        .unwrap();
    registry
        .register("discord", TestAdapter::new(Health::Hangs))
        .unwrap();
    let health = collect_channel_health(&registry, Duration::from_millis(200)).await;
    assert_eq!(health.len(), 4);
    assert_eq!(health["tui"], ChannelHealthStatus::Healthy);
    assert_eq!(
        health["slack"],
        ChannelHealthStatus::Degraded {
            reason: "rate limited".into()
        }
    );
    assert_eq!(
        health["telegram"],
        ChannelHealthStatus::Unhealthy {
            reason: "channel transport error: bot API returned 502".into()
        }
    );
    assert_eq!(
        health["discord"],
        ChannelHealthStatus::Unhealthy {
            reason: "health check did not answer within 200 ms".into()
        }
    );
    // The registry hands out the adapter itself, not a copy.
    let adapter = registry.get("tui").unwrap();
    adapter
        .send(ChannelOutboundEvent {
            channel_session_id: "local".into(),
            frame: types::protocol::gateway::GatewayServerFrame::AssistantDelta {
                text: "hi".into(),
            },
            metadata: Default::default(),
        })
        .await
        .unwrap();
    assert_eq!(healthy.delivered.lock().unwrap().len(), 1);
}
