//! The scrubber against labelled corpora: every secret in `secrets.jsonl`
//! must disappear (100% recall), every text in `lookalikes.jsonl` must come
//! out unchanged (no false positives), and scrubbing is idempotent on both.
//!
//! The values in the corpora are fake, generated for these tests.

use sandbox::scrub::{REDACTED_HIGH_ENTROPY, Scrubber};
use serde::Deserialize;
use types::SecretString;

const SECRETS: &str = include_str!("data/scrub/secrets.jsonl");
const LOOKALIKES: &str = include_str!("data/scrub/lookalikes.jsonl");

/// A configured secret: passed to `Scrubber::with_secrets` rather than found
/// by a rule.
const CONFIGURED: &str = "configured";

#[derive(Debug, Deserialize)]
struct SecretCase {
    kind: String,
    text: String,
    /// The substring that must not survive scrubbing.
    secret: String,
}

#[derive(Debug, Deserialize)]
struct LookalikeCase {
    kind: String,
    text: String,
}

fn parse<T: for<'de> Deserialize<'de>>(name: &str, jsonl: &str) -> Vec<T> {
    jsonl
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{name} line {}: {e}", index + 1))
        })
        .collect()
}

fn scrubber(secrets: &[SecretCase]) -> Scrubber {
    let configured: Vec<SecretString> = secrets
        .iter()
        .filter(|case| case.kind == CONFIGURED)
        .map(|case| SecretString::new(case.secret.as_str()))
        .collect();
    Scrubber::new().with_secrets(&configured)
}

#[test]
fn every_secret_in_the_corpus_is_redacted() {
    let cases: Vec<SecretCase> = parse("secrets.jsonl", SECRETS);
    assert!(cases.len() >= 60, "the corpus shrank to {}", cases.len());
    let scrubber = scrubber(&cases);
    let mut misses = Vec::new();
    for case in &cases {
        assert!(
            case.text.contains(&case.secret),
            "corpus error: secret not in text: {case:?}"
        );
        let scrubbed = scrubber.scrub(&case.text);
        if scrubbed.contains(&case.secret) {
            misses.push(format!(
                "MISS [{}] {:?}\n  -> {:?}",
                case.kind, case.text, scrubbed
            ));
        }
        assert_eq!(
            scrubber.scrub(&scrubbed),
            scrubbed,
            "scrubbing twice differs from once: {case:?}"
        );
    }
    let found = cases.len() - misses.len();
    println!("recall: {found}/{}", cases.len());
    for miss in &misses {
        println!("{miss}");
    }
    assert!(misses.is_empty(), "{} secrets survived", misses.len());
}

#[test]
fn no_lookalike_in_the_corpus_is_changed() {
    let secrets: Vec<SecretCase> = parse("secrets.jsonl", SECRETS);
    let cases: Vec<LookalikeCase> = parse("lookalikes.jsonl", LOOKALIKES);
    assert!(cases.len() >= 60, "the corpus shrank to {}", cases.len());
    // With the configured secrets too: they must not cause changes elsewhere.
    let scrubber = scrubber(&secrets);
    let changed: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let scrubbed = scrubber.scrub(&case.text);
            (scrubbed != case.text.as_str()).then(|| {
                format!(
                    "CHANGED [{}] {:?}\n  -> {:?}",
                    case.kind, case.text, scrubbed
                )
            })
        })
        .collect();
    println!("false positives: {}/{}", changed.len(), cases.len());
    for change in &changed {
        println!("{change}");
    }
    assert!(changed.is_empty(), "{} lookalikes changed", changed.len());
}

/// Measures the high-entropy rule on unlabelled random strings (the corpus
/// holds a few; this holds a thousand). The rule's documented miss rate at
/// 32 characters is about 0.3%.
#[test]
fn random_32_character_strings_are_redacted() {
    // splitmix64: deterministic, no dependency; the top six bits pick a character.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        char::from(alphabet[usize::try_from((z ^ (z >> 31)) >> 58).unwrap()])
    };
    let scrubber = Scrubber::new();
    let (mut candidates, mut redacted) = (0, 0);
    for _ in 0..1000 {
        let token: String = (0..32).map(|_| next()).collect();
        let classes = [
            u8::is_ascii_uppercase,
            u8::is_ascii_lowercase,
            u8::is_ascii_digit,
        ];
        // The rule requires all three classes; strings without are out of scope.
        if classes.iter().all(|class| token.bytes().any(|b| class(&b))) {
            candidates += 1;
            redacted += usize::from(scrubber.scrub(&token) == REDACTED_HIGH_ENTROPY);
        }
    }
    println!("high-entropy recall on random 32-character strings: {redacted}/{candidates}");
    assert!(redacted * 100 >= candidates * 98, "{redacted}/{candidates}");
}
