//! The chain memory: which response answered which conversation prefix.

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use types::{Context, Message, MessageRole};

/// How many answered prefixes are remembered per provider.
const MAX_CHAINS: usize = 256;

/// A conversation prefix: how many non-system messages, and their hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct PrefixKey {
    len: usize,
    hash: u64,
}

/// Rolling hashes of a context's non-system messages: `hashes[i]` covers
/// the first `i + 1` of them. System messages are excluded because they
/// travel as `instructions` on every request (so per-turn system text such
/// as retrieved memory never breaks a chain).
#[derive(Debug, Clone)]
pub(super) struct PrefixHasher {
    model: String,
    pub(super) hashes: Vec<u64>,
}

impl PrefixHasher {
    pub(super) fn new(context: &Context) -> Self {
        let mut hasher = Self {
            model: context.model.to_string(),
            hashes: Vec::new(),
        };
        for message in conversation(context) {
            hasher.push(message);
        }
        hasher
    }

    pub(super) fn push(&mut self, message: &Message) {
        let mut state = DefaultHasher::new();
        match self.hashes.last() {
            Some(previous) => previous.hash(&mut state),
            None => self.model.hash(&mut state),
        }
        // Serialising gives every field a stable, unambiguous encoding.
        serde_json::to_string(message)
            .unwrap_or_default()
            .hash(&mut state);
        self.hashes.push(state.finish());
    }

    pub(super) fn key(&self, len: usize) -> Option<PrefixKey> {
        let hash = *self.hashes.get(len.checked_sub(1)?)?;
        Some(PrefixKey { len, hash })
    }
}

pub(super) fn conversation(context: &Context) -> impl Iterator<Item = &Message> {
    context
        .messages
        .iter()
        .filter(|m| m.role != MessageRole::System)
}

/// Answered prefixes and the response that ended each (bounded, oldest
/// forgotten first).
#[derive(Debug, Default)]
struct ChainStore {
    ids: HashMap<PrefixKey, String>,
    order: VecDeque<PrefixKey>,
}

/// Shared between the wire and its stream parsers.
#[derive(Debug, Clone, Default)]
pub(super) struct ResponseChains(Arc<Mutex<ChainStore>>);

impl ResponseChains {
    fn with<T>(&self, f: impl FnOnce(&mut ChainStore) -> T) -> T {
        // The store holds plain data; a panic elsewhere cannot leave it
        // inconsistent, so a poisoned lock is still usable.
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The longest remembered prefix of `hasher`'s conversation, keeping at
    /// least one new message to send.
    pub(super) fn longest(&self, hasher: &PrefixHasher) -> Option<(usize, String)> {
        self.with(|store| {
            (1..hasher.hashes.len()).rev().find_map(|len| {
                let key = hasher.key(len)?;
                store.ids.get(&key).map(|id| (len, id.clone()))
            })
        })
    }

    pub(super) fn record(&self, key: PrefixKey, response_id: String) {
        self.with(|store| {
            if store.ids.insert(key, response_id).is_none() {
                store.order.push_back(key);
            }
            while store.order.len() > MAX_CHAINS {
                if let Some(old) = store.order.pop_front() {
                    store.ids.remove(&old);
                }
            }
        });
    }

    pub(super) fn forget(&self, key: PrefixKey) {
        self.with(|store| {
            store.ids.remove(&key);
            store.order.retain(|k| *k != key);
        });
    }
}
