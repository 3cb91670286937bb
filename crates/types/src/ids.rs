//! Typed identifiers. Every id that crosses a crate boundary is a newtype so
//! a session id can never be passed where a user id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::IdError;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self::new(value)
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A model id as the provider spells it (`gpt-4.1`, `claude-sonnet-4-5-20250929`).
    ModelId
);
string_id!(
    /// The name of an entry in the provider registry (`[providers.<name>]`).
    ProviderId
);
string_id!(
    /// A conversation's canonical id (`runtime_session_id`).
    SessionId
);
string_id!(
    /// One user turn inside a session.
    TurnId
);

/// A user of the runner. It names the user's workspace directory
/// (`<workspace_root>/<user_id>/`), so only safe path segments are accepted:
/// 1–64 characters of ASCII letters, digits, `-`, `_` and `.`, not starting
/// with a dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        let valid_chars = value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if value.is_empty() || value.len() > Self::MAX_LEN || !valid_chars || value.starts_with('.')
        {
            return Err(IdError::InvalidUserId { value });
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = IdError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<UserId> for String {
    fn from(value: UserId) -> Self {
        value.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_accepts_safe_segments() {
        for ok in ["alice", "bob-2", "team_a.b", "A1"] {
            assert_eq!(UserId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn user_id_rejects_path_tricks() {
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a\\b",
            "é",
            "a b",
            &"x".repeat(65),
        ] {
            let err = UserId::parse(bad).unwrap_err();
            assert!(err.to_string().contains("invalid user id"), "{bad}: {err}");
        }
    }

    #[test]
    fn user_id_validates_when_deserialised() {
        let err = serde_json::from_str::<UserId>("\"../etc\"").unwrap_err();
        assert!(err.to_string().contains("invalid user id"), "{err}");
        let ok: UserId = serde_json::from_str("\"alice\"").unwrap();
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"alice\"");
    }

    #[test]
    fn string_ids_are_transparent_in_json() {
        let id = SessionId::new("s-1");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"s-1\"");
        assert_eq!(serde_json::from_str::<SessionId>("\"s-1\"").unwrap(), id);
    }
}
