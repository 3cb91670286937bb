//! `SecretString`: a credential that can travel through config and wire
//! types but never shows up in `Debug` output, logs or error texts.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret value. `Debug` prints a mask; there is no `Display`. Serialising
/// writes the real value, because the bootstrap envelope and the gateway's
/// `Hello` must carry it — never serialise it into anything that is logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// The mask used wherever a secret would otherwise be shown.
    pub const MASK: &'static str = "****";

    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call only where it is sent to its destination.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretString({})", Self::MASK)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = SecretString::new("sk-live-123");
        assert_eq!(format!("{secret:?}"), "SecretString(****)");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(SecretString(****))");
        assert_eq!(secret.expose(), "sk-live-123");
    }

    #[test]
    fn serialises_as_plain_string_for_the_wire() {
        let secret = SecretString::new("tok");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"tok\"");
        assert_eq!(
            serde_json::from_str::<SecretString>("\"tok\"").unwrap(),
            secret
        );
    }
}
