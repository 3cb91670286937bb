//! The deterministic lexical embedder: a hashed bag of lower-cased word
//! unigrams and character trigrams (of each word with boundary marks),
//! sub-linear term weights, signed feature hashing into `DIMENSIONS`
//! buckets, L2-normalised. Texts sharing words or word pieces get a high
//! cosine similarity ("embedding" ~ "embeddings"); unrelated texts land near
//! zero. No model, no network, identical output on every platform.

use async_trait::async_trait;
use types::MemoryError;

use super::{DIMENSIONS, Embedder, l2_normalize};

/// The stored model name; bump the version if the features ever change.
pub const LEXICAL_MODEL: &str = "oxydra-lexical-v1";

/// Weight of a whole word relative to one of its trigrams.
const WORD_WEIGHT: f32 = 1.0;
const TRIGRAM_WEIGHT: f32 = 0.35;

/// The deterministic default embedder.
#[derive(Debug, Clone, Copy, Default)]
pub struct LexicalEmbedder;

impl LexicalEmbedder {
    pub fn new() -> Self {
        Self
    }

    /// The vector of one text (synchronous; used by `embed`).
    pub fn vector(&self, text: &str) -> Vec<f32> {
        let mut counts: std::collections::HashMap<u64, (f32, f32)> =
            std::collections::HashMap::new();
        let lowered = text.to_lowercase();
        for word in lowered
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            add(&mut counts, fnv1a(b"w", word.as_bytes()), WORD_WEIGHT);
            let marked: Vec<char> = std::iter::once('^')
                .chain(word.chars())
                .chain(std::iter::once('$'))
                .collect();
            let mut piece = String::new();
            for window in marked.windows(3) {
                piece.clear();
                piece.extend(window);
                add(&mut counts, fnv1a(b"g", piece.as_bytes()), TRIGRAM_WEIGHT);
            }
        }
        let mut vector = vec![0.0_f32; DIMENSIONS];
        for (hash, (count, weight)) in counts {
            // Sub-linear term frequency keeps a repeated word from
            // drowning the rest.
            let value = weight * (1.0 + count.ln());
            // The bucket comes from the low bits, the sign from the top
            // bit, so collisions cancel out on average.
            let bucket = (hash % DIMENSIONS as u64) as usize;
            let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
            vector[bucket] += sign * value;
        }
        l2_normalize(&mut vector);
        vector
    }
}

fn add(counts: &mut std::collections::HashMap<u64, (f32, f32)>, hash: u64, weight: f32) {
    let entry = counts.entry(hash).or_insert((0.0, weight));
    entry.0 += 1.0;
}

/// 64-bit FNV-1a over a namespace and the bytes (stable across runs and
/// platforms, unlike `std`'s randomly seeded hasher).
fn fnv1a(namespace: &[u8], bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in namespace.iter().chain([&0xff]).chain(bytes) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[async_trait]
impl Embedder for LexicalEmbedder {
    fn model_name(&self) -> &str {
        LEXICAL_MODEL
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, MemoryError> {
        Ok(texts.iter().map(|text| self.vector(text)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn vectors_are_unit_length_and_deterministic() {
        let embedder = LexicalEmbedder::new();
        let a = embedder.vector("The quick brown fox");
        assert_eq!(a.len(), DIMENSIONS);
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-5);
        assert_eq!(a, embedder.vector("The quick brown fox"));
        assert!(embedder.vector("").iter().all(|x| *x == 0.0));
        assert!(embedder.vector(" !? ").iter().all(|x| *x == 0.0));
    }

    #[test]
    fn shared_words_and_word_pieces_are_close() {
        let embedder = LexicalEmbedder::new();
        let base = embedder.vector("deploy the database migration tonight");
        let overlap = embedder.vector("the database migration failed");
        let inflected = embedder.vector("deployed databases migrations");
        let unrelated = embedder.vector("purple elephants sing opera");
        let same = cosine(&base, &overlap);
        let pieces = cosine(&base, &inflected);
        let none = cosine(&base, &unrelated);
        assert!(same > 0.5, "{same}");
        assert!(pieces > 0.3, "{pieces}");
        assert!(none.abs() < 0.15, "{none}");
        assert!(same > pieces && pieces > none);
        // Case and punctuation do not matter.
        assert_eq!(
            embedder.vector("Hello, World!"),
            embedder.vector("hello world")
        );
    }
}
