//! The chain memory: which response answered which conversation prefix.
//!
//! Each answer also carries its `ResponseRef` (the response id and the
//! hash of the conversation it ends), stored with the message; a context
//! restored after a restart brings those back, and `adopt` learns them
//! again, so chains survive restarts. Hashes are SHA-256 based, so they
//! are the same in every process and every build.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};
use types::{Context, Message, MessageRole, ResponseRef};

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
        let mut state = Sha256::new();
        match self.hashes.last() {
            Some(previous) => state.update(previous.to_be_bytes()),
            None => state.update(self.model.as_bytes()),
        }
        // Serialising gives every field a stable, unambiguous encoding.
        // The message's own response reference is left out: it is added
        // after the answer was hashed.
        let mut bare = message.clone();
        bare.response_ref = None;
        state.update(serde_json::to_vec(&bare).unwrap_or_default());
        let digest = state.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        self.hashes.push(u64::from_be_bytes(first));
    }

    pub(super) fn key(&self, len: usize) -> Option<PrefixKey> {
        let hash = *self.hashes.get(len.checked_sub(1)?)?;
        Some(PrefixKey { len, hash })
    }

    /// The reference to store on the answer that ends the first `len`
    /// messages.
    pub(super) fn reference(&self, len: usize, response_id: String) -> Option<ResponseRef> {
        let key = self.key(len)?;
        Some(ResponseRef {
            id: response_id,
            conversation_hash: format!("{:016x}", key.hash),
        })
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
    /// Ids the server rejected: never learned again from a message.
    expired: VecDeque<String>,
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

    /// Forgets the chain ending at `key` for good: the server no longer
    /// knows its response.
    pub(super) fn forget(&self, key: PrefixKey) {
        self.with(|store| {
            if let Some(id) = store.ids.remove(&key) {
                store.expired.push_back(id);
                if store.expired.len() > MAX_CHAINS {
                    store.expired.pop_front();
                }
            }
            store.order.retain(|k| *k != key);
        });
    }

    /// Learns the chains the context's answers carry (stored with them,
    /// e.g. before a restart): an answer's reference counts only when its
    /// hash matches the conversation the context has up to that answer.
    pub(super) fn adopt(&self, context: &Context, hasher: &PrefixHasher) {
        for (index, message) in conversation(context).enumerate() {
            let Some(reference) = &message.response_ref else {
                continue;
            };
            let Some(key) = hasher.key(index + 1) else {
                continue;
            };
            let expected = format!("{:016x}", key.hash);
            let known = self.with(|store| {
                store.ids.contains_key(&key) || store.expired.contains(&reference.id)
            });
            if reference.conversation_hash == expected && !known {
                self.record(key, reference.id.clone());
            }
        }
    }
}
