//! `ReliableProvider`: retries, stream reconnection and fallbacks around
//! any provider.
//!
//! - Only transient failures are retried (`ProviderError::is_retriable`:
//!   transport errors, 429, 5xx, dropped streams); 401/400/parse errors
//!   surface at once.
//! - Delay before retry `n` (1-based): `min(base · 2^(n-1), max)` with
//!   "equal jitter" (half fixed, half random); a `Retry-After` from the
//!   server wins — unless it is longer than the policy's `backoff_max`:
//!   then this provider is not retried (the turn would stall for as long
//!   as the server says, an hour for some daily quotas) and the next
//!   fallback, or the caller, gets the `RateLimited` error at once.
//! - A stream that drops before any content reached the caller is
//!   reconnected transparently. Once content was forwarded, the drop is
//!   reported as `ConnectionLost` — the caller already showed that text,
//!   so repeating the request would duplicate it. A caller that drops the
//!   stream (cancel, deadline) ends a pending reconnect at once, even in
//!   its backoff: no request is made for a caller that gave up.
//! - When the primary is exhausted (or rejects its credentials), each
//!   fallback provider/model is tried in order with the same policy.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use tokio::sync::mpsc;
use types::config::ReliabilityConfig;
use types::{
    Context, ModelCatalog, ModelId, Provider, ProviderCaps, ProviderError, ProviderId,
    ProviderStream, Response, StreamItem,
};

/// Retry timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per provider, the first included (at least 1).
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl RetryPolicy {
    pub fn from_config(config: &ReliabilityConfig) -> Self {
        Self {
            max_attempts: config.max_attempts.max(1),
            backoff_base: Duration::from_millis(config.backoff_base_ms),
            backoff_max: Duration::from_millis(config.backoff_max_ms),
        }
    }

    /// The un-jittered delay before retry `retry` (1-based).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max)
    }

    /// The delay before retry `retry` after `error`, or `None` when the
    /// server asks for a longer wait than `backoff_max` (no retry then).
    pub fn delay(&self, retry: u32, error: &ProviderError, rng: &mut impl Rng) -> Option<Duration> {
        if let ProviderError::RateLimited {
            retry_after: Some(after),
            ..
        } = error
        {
            return (*after <= self.backoff_max).then_some(*after);
        }
        let ceiling = self.ceiling(retry);
        let half = ceiling / 2;
        Some(half + half.mul_f64(rng.random::<f64>()))
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::from_config(&ReliabilityConfig::default())
    }
}

/// A provider and the model to ask it for.
#[derive(Clone)]
pub struct Fallback {
    pub provider: Arc<dyn Provider>,
    pub model: ModelId,
}

impl std::fmt::Debug for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fallback")
            .field("provider", self.provider.provider_id())
            .field("model", &self.model)
            .finish()
    }
}

/// Retries, reconnection and fallbacks around a primary provider.
#[derive(Clone)]
pub struct ReliableProvider {
    primary: Arc<dyn Provider>,
    fallbacks: Vec<Fallback>,
    policy: RetryPolicy,
}

impl std::fmt::Debug for ReliableProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReliableProvider")
            .field("primary", self.primary.provider_id())
            .field("fallbacks", &self.fallbacks)
            .field("policy", &self.policy)
            .finish()
    }
}

impl ReliableProvider {
    pub fn new(primary: Arc<dyn Provider>, policy: RetryPolicy) -> Self {
        Self {
            primary,
            fallbacks: Vec::new(),
            policy,
        }
    }

    pub fn with_fallbacks(mut self, fallbacks: Vec<Fallback>) -> Self {
        self.fallbacks = fallbacks;
        self
    }

    /// The primary with the caller's context, then each fallback with the
    /// context re-targeted at its provider and model.
    fn targets<'a>(
        &'a self,
        context: &'a Context,
    ) -> impl Iterator<Item = (&'a Arc<dyn Provider>, std::borrow::Cow<'a, Context>)> {
        std::iter::once((&self.primary, std::borrow::Cow::Borrowed(context))).chain(
            self.fallbacks.iter().map(move |fallback| {
                let mut retargeted = context.clone();
                retargeted.provider = fallback.provider.provider_id().clone();
                retargeted.model = fallback.model.clone();
                (&fallback.provider, std::borrow::Cow::Owned(retargeted))
            }),
        )
    }

    /// Runs `call` against each target until one succeeds.
    async fn run<T, F, Fut>(&self, context: &Context, mut call: F) -> Result<T, ProviderError>
    where
        F: FnMut(Arc<dyn Provider>, Context) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let mut last_error = None;
        for (provider, context) in self.targets(context) {
            let context = context.into_owned();
            let result = retry(&self.policy, || call(provider.clone(), context.clone())).await;
            match result {
                Ok(value) => return Ok(value),
                Err(error) if should_fall_back(&error) => {
                    tracing::warn!(provider = %provider.provider_id(), %error, "provider exhausted");
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        // `targets` always yields the primary, so an error was recorded.
        Err(last_error.unwrap_or_else(|| ProviderError::Transport("no provider to call".into())))
    }
}

/// Another provider may succeed where this one is exhausted or refuses the
/// key; a malformed request would fail everywhere.
fn should_fall_back(error: &ProviderError) -> bool {
    error.is_retriable() || matches!(error, ProviderError::Unauthorized(_))
}

/// Calls `attempt` until it succeeds, fails permanently, or the policy's
/// attempts are used up.
async fn retry<T, F, Fut>(policy: &RetryPolicy, mut attempt: F) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if error.is_retriable() && tries < policy.max_attempts => {
                let Some(delay) = policy.delay(tries, &error, &mut rand::rng()) else {
                    tracing::warn!(%error, "the server asks for a longer wait than backoff_max");
                    return Err(error);
                };
                tracing::info!(%error, attempt = tries, ?delay, "retrying provider call");
                tokio::time::sleep(delay).await;
                tries += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

#[async_trait]
impl Provider for ReliableProvider {
    fn provider_id(&self) -> &ProviderId {
        self.primary.provider_id()
    }

    fn model_catalog(&self) -> &ModelCatalog {
        self.primary.model_catalog()
    }

    fn capabilities(&self, model: &ModelId) -> Result<ProviderCaps, ProviderError> {
        self.primary.capabilities(model)
    }

    async fn complete(&self, context: &Context) -> Result<Response, ProviderError> {
        self.run(context, |provider, context| async move {
            provider.complete(&context).await
        })
        .await
    }

    async fn stream(
        &self,
        context: &Context,
        buffer_size: usize,
    ) -> Result<ProviderStream, ProviderError> {
        let policy = self.policy;
        self.run(context, |provider, context| async move {
            let first = provider.stream(&context, buffer_size).await?;
            Ok(forward_with_reconnect(
                provider,
                context,
                first,
                policy,
                buffer_size,
            ))
        })
        .await
    }
}

/// Forwards `stream` to a new channel. Until the first content item, other
/// items (usage) are held back, and a `ConnectionLost` reconnects with the
/// retry policy (discarding what was held, so nothing is counted twice).
/// The task ends when the stream ends or the receiver is dropped.
fn forward_with_reconnect(
    provider: Arc<dyn Provider>,
    context: Context,
    mut stream: ProviderStream,
    policy: RetryPolicy,
    buffer_size: usize,
) -> ProviderStream {
    let (tx, rx) = mpsc::channel(buffer_size.max(1));
    tokio::spawn(async move {
        let mut held = Vec::new();
        let mut content_sent = false;
        // Connection attempts so far, the first included.
        let mut attempts = 1;
        loop {
            let item = tokio::select! {
                _ = tx.closed() => return,
                item = stream.recv() => item,
            };
            let Some(item) = item else {
                // A clean end: release anything held back.
                for item in held {
                    if tx.send(item).await.is_err() {
                        return;
                    }
                }
                return;
            };
            if let StreamItem::ConnectionLost(reason) = &item
                && !content_sent
            {
                held.clear();
                // A caller that gave up (cancel, deadline) must not get a
                // request made for it after the backoff.
                let reconnected = tokio::select! {
                    _ = tx.closed() => return,
                    reconnected = reconnect(
                        &provider,
                        &context,
                        &policy,
                        buffer_size,
                        reason,
                        &mut attempts,
                    ) => reconnected,
                };
                match reconnected {
                    Ok(next) => stream = next,
                    Err(lost) => {
                        // The receiver may be gone; nothing else to do then.
                        let _ = tx.send(lost).await;
                        return;
                    }
                }
                continue;
            }
            if !content_sent && !item.is_content() {
                held.push(item);
                continue;
            }
            if !content_sent {
                content_sent = true;
                for held_item in held.drain(..) {
                    if tx.send(held_item).await.is_err() {
                        return;
                    }
                }
            }
            if tx.send(item).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// Opens a new stream after a drop, retrying transient failures while
/// attempts remain. On failure, returns the `ConnectionLost` to forward.
async fn reconnect(
    provider: &Arc<dyn Provider>,
    context: &Context,
    policy: &RetryPolicy,
    buffer_size: usize,
    reason: &str,
    attempts: &mut u32,
) -> Result<ProviderStream, StreamItem> {
    let mut error = ProviderError::ConnectionLost(reason.to_owned());
    while *attempts < policy.max_attempts {
        let Some(delay) = policy.delay(*attempts, &error, &mut rand::rng()) else {
            break;
        };
        tokio::time::sleep(delay).await;
        *attempts += 1;
        tracing::info!(%error, attempt = *attempts, "stream dropped before content; reconnecting");
        match provider.stream(context, buffer_size).await {
            Ok(stream) => return Ok(stream),
            Err(next) if next.is_retriable() => error = next,
            Err(next) => {
                error = next;
                break;
            }
        }
    }
    Err(StreamItem::ConnectionLost(format!(
        "gave up after {attempts} attempts: {error}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accumulate::collect_stream;
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use tokio::time::Instant;
    use types::{Message, ProviderType, UsageUpdate};

    /// What one call to the scripted provider returns.
    enum Outcome {
        Complete(Result<Response, ProviderError>),
        Stream(Result<Vec<StreamItem>, ProviderError>),
    }

    /// A provider that plays back outcomes and records the contexts it saw.
    struct Scripted {
        id: ProviderId,
        outcomes: Mutex<VecDeque<Outcome>>,
        seen: Mutex<Vec<Context>>,
    }

    impl Scripted {
        fn new(id: &str, outcomes: Vec<Outcome>) -> Arc<Self> {
            Arc::new(Self {
                id: id.into(),
                outcomes: Mutex::new(outcomes.into()),
                seen: Mutex::new(Vec::new()),
            })
        }

        fn calls(&self) -> usize {
            self.seen.lock().unwrap().len()
        }

        fn next(&self, context: &Context) -> Outcome {
            self.seen.lock().unwrap().push(context.clone());
            self.outcomes
                .lock()
                .unwrap()
                .pop_front()
                .expect("script exhausted")
        }
    }

    #[async_trait]
    impl Provider for Scripted {
        fn provider_id(&self) -> &ProviderId {
            &self.id
        }

        fn model_catalog(&self) -> &ModelCatalog {
            ModelCatalog::pinned()
        }

        fn capabilities(&self, model: &ModelId) -> Result<ProviderCaps, ProviderError> {
            ModelCatalog::pinned().caps(ProviderType::Openai, model)
        }

        async fn complete(&self, context: &Context) -> Result<Response, ProviderError> {
            match self.next(context) {
                Outcome::Complete(result) => result,
                Outcome::Stream(_) => panic!("expected complete()"),
            }
        }

        async fn stream(
            &self,
            context: &Context,
            buffer_size: usize,
        ) -> Result<ProviderStream, ProviderError> {
            let Outcome::Stream(result) = self.next(context) else {
                panic!("expected stream()");
            };
            let (tx, rx) = mpsc::channel(buffer_size.max(64));
            for item in result? {
                tx.try_send(item).unwrap();
            }
            Ok(rx)
        }
    }

    fn context() -> Context {
        Context {
            provider: "primary".into(),
            model: "gpt-4.1".into(),
            messages: vec![Message::user("hi")],
            tools: vec![],
            settings: None,
        }
    }

    fn ok(text: &str) -> Outcome {
        Outcome::Complete(Ok(Response {
            message: Message::assistant(text),
            finish_reason: None,
            usage: None,
        }))
    }

    fn fail(error: ProviderError) -> Outcome {
        Outcome::Complete(Err(error))
    }

    fn unavailable() -> ProviderError {
        ProviderError::HttpStatus {
            status: 503,
            message: "busy".into(),
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let policy = policy();
        let ceilings: Vec<u64> = (1..=7)
            .map(|n| policy.ceiling(n).as_millis() as u64)
            .collect();
        assert_eq!(ceilings, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        assert_eq!(policy.ceiling(200), Duration::from_secs(30));
        let mut rng = rand::rng();
        for retry in 1..=6 {
            for _ in 0..50 {
                let delay = policy.delay(retry, &unavailable(), &mut rng).unwrap();
                let ceiling = policy.ceiling(retry);
                assert!(
                    delay >= ceiling / 2 && delay <= ceiling,
                    "{delay:?} vs {ceiling:?}"
                );
            }
        }
        let limited = ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(25)),
            message: String::new(),
        };
        assert_eq!(
            policy.delay(1, &limited, &mut rng),
            Some(Duration::from_secs(25))
        );
        let quota = ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(31)),
            message: String::new(),
        };
        assert_eq!(policy.delay(1, &quota, &mut rng), None);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_with_backoff() {
        let primary = Scripted::new(
            "primary",
            vec![fail(unavailable()), fail(unavailable()), ok("hello")],
        );
        let reliable = ReliableProvider::new(primary.clone(), policy());
        let start = Instant::now();
        let response = reliable.complete(&context()).await.unwrap();
        assert_eq!(response.message.content.as_deref(), Some("hello"));
        assert_eq!(primary.calls(), 3);
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(1500) && waited <= Duration::from_millis(3000),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_wins_over_backoff() {
        let limited = ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
            message: "slow down".into(),
        };
        let primary = Scripted::new("primary", vec![fail(limited), ok("ok")]);
        let start = Instant::now();
        ReliableProvider::new(primary, policy())
            .complete(&context())
            .await
            .unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_beyond_backoff_max_moves_on_at_once() {
        let quota = ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(3600)),
            message: "daily quota".into(),
        };
        // Alone: the error, with no wait and no second request.
        let primary = Scripted::new("primary", vec![fail(quota.clone())]);
        let start = Instant::now();
        let got = ReliableProvider::new(primary.clone(), policy())
            .complete(&context())
            .await
            .unwrap_err();
        assert_eq!(got, quota);
        assert_eq!(primary.calls(), 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
        // With a fallback: the fallback, at once.
        let primary = Scripted::new("primary", vec![fail(quota)]);
        let backup = Scripted::new("backup", vec![ok("from backup")]);
        let response = ReliableProvider::new(primary.clone(), policy())
            .with_fallbacks(vec![Fallback {
                provider: backup,
                model: "claude-haiku-4-5".into(),
            }])
            .complete(&context())
            .await
            .unwrap();
        assert_eq!(response.message.content.as_deref(), Some("from backup"));
        assert_eq!(primary.calls(), 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_surface_immediately() {
        for error in [
            ProviderError::Unauthorized("bad key".into()),
            ProviderError::HttpStatus {
                status: 400,
                message: "bad request".into(),
            },
            ProviderError::ResponseParse("junk".into()),
        ] {
            let primary = Scripted::new("primary", vec![fail(error.clone())]);
            let start = Instant::now();
            let got = ReliableProvider::new(primary.clone(), policy())
                .complete(&context())
                .await
                .unwrap_err();
            assert_eq!(got, error);
            assert_eq!(primary.calls(), 1);
            assert_eq!(start.elapsed(), Duration::ZERO);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn exhausted_primary_falls_back_with_the_fallback_model() {
        let primary = Scripted::new(
            "primary",
            vec![
                fail(unavailable()),
                fail(unavailable()),
                fail(unavailable()),
            ],
        );
        let backup = Scripted::new("backup", vec![ok("from backup")]);
        let reliable =
            ReliableProvider::new(primary.clone(), policy()).with_fallbacks(vec![Fallback {
                provider: backup.clone(),
                model: "claude-haiku-4-5".into(),
            }]);
        let response = reliable.complete(&context()).await.unwrap();
        assert_eq!(response.message.content.as_deref(), Some("from backup"));
        assert_eq!(primary.calls(), 3);
        let seen = backup.seen.lock().unwrap()[0].clone();
        assert_eq!(seen.model.as_str(), "claude-haiku-4-5");
        assert_eq!(seen.provider.as_str(), "backup");
        assert_eq!(seen.messages, context().messages);
    }

    #[tokio::test(start_paused = true)]
    async fn bad_requests_do_not_fall_back() {
        let bad = ProviderError::HttpStatus {
            status: 400,
            message: "context too long".into(),
        };
        let primary = Scripted::new("primary", vec![fail(bad.clone())]);
        let backup = Scripted::new("backup", vec![]);
        let reliable = ReliableProvider::new(primary, policy()).with_fallbacks(vec![Fallback {
            provider: backup.clone(),
            model: "gpt-4o".into(),
        }]);
        assert_eq!(reliable.complete(&context()).await.unwrap_err(), bad);
        assert_eq!(backup.calls(), 0);
    }

    fn stream(items: Vec<StreamItem>) -> Outcome {
        Outcome::Stream(Ok(items))
    }

    fn lost() -> StreamItem {
        StreamItem::ConnectionLost("reset by peer".into())
    }

    #[tokio::test(start_paused = true)]
    async fn stream_dropped_before_content_reconnects_without_double_counting() {
        let primary = Scripted::new(
            "primary",
            vec![
                stream(vec![
                    StreamItem::UsageUpdate(UsageUpdate::new(10, 0)),
                    lost(),
                ]),
                stream(vec![
                    StreamItem::UsageUpdate(UsageUpdate::new(10, 0)),
                    StreamItem::Text("Hel".into()),
                    StreamItem::Text("lo".into()),
                    StreamItem::UsageUpdate(UsageUpdate::new(0, 2)),
                ]),
            ],
        );
        let reliable = ReliableProvider::new(primary.clone(), policy());
        let rx = reliable.stream(&context(), 8).await.unwrap();
        let response = collect_stream(rx).await.unwrap();
        assert_eq!(response.message.content.as_deref(), Some("Hello"));
        assert_eq!(response.usage, Some(UsageUpdate::new(10, 2)));
        assert_eq!(primary.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn stream_dropped_after_content_is_reported_not_repeated() {
        let primary = Scripted::new(
            "primary",
            vec![stream(vec![StreamItem::Text("partial".into()), lost()])],
        );
        let reliable = ReliableProvider::new(primary.clone(), policy());
        let mut rx = reliable.stream(&context(), 8).await.unwrap();
        let mut items = Vec::new();
        while let Some(item) = rx.recv().await {
            items.push(item);
        }
        assert_eq!(items, vec![StreamItem::Text("partial".into()), lost()]);
        assert_eq!(primary.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn stream_that_keeps_dropping_gives_up_after_max_attempts() {
        let primary = Scripted::new(
            "primary",
            vec![
                stream(vec![lost()]),
                stream(vec![lost()]),
                stream(vec![lost()]),
            ],
        );
        let reliable = ReliableProvider::new(primary.clone(), policy());
        let err = collect_stream(reliable.stream(&context(), 8).await.unwrap())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("gave up after 3 attempts"),
            "{err}"
        );
        assert_eq!(primary.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_gone_during_the_reconnect_backoff_gets_no_new_request() {
        let primary = Scripted::new(
            "primary",
            vec![
                stream(vec![lost()]),
                stream(vec![StreamItem::Text("unwanted".into())]),
            ],
        );
        let reliable = ReliableProvider::new(primary.clone(), policy());
        let rx = reliable.stream(&context(), 8).await.unwrap();
        // Let the forwarder see the drop and start its backoff, then leave.
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(rx);
        tokio::time::sleep(policy().backoff_max).await;
        assert_eq!(primary.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn stream_connect_errors_are_retried_before_returning() {
        let primary = Scripted::new(
            "primary",
            vec![
                Outcome::Stream(Err(unavailable())),
                stream(vec![StreamItem::Text("ok".into())]),
            ],
        );
        let reliable = ReliableProvider::new(primary.clone(), policy());
        let response = collect_stream(reliable.stream(&context(), 8).await.unwrap())
            .await
            .unwrap();
        assert_eq!(response.message.content.as_deref(), Some("ok"));
        let unauthorized = Scripted::new(
            "primary",
            vec![Outcome::Stream(Err(ProviderError::Unauthorized(
                "no".into(),
            )))],
        );
        let err = ReliableProvider::new(unauthorized, policy())
            .stream(&context(), 8)
            .await
            .unwrap_err();
        assert_eq!(err, ProviderError::Unauthorized("no".into()));
    }
}
