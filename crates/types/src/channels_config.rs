//! The `[channels]` table of a user's runner file: the chat platforms the
//! runner connects to that user's agent. Secrets are references
//! (`CredentialRef`), never values.

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer, Serialize};

use crate::runner::CredentialRef;

/// The Bot API's address, unless `api_base_url` says otherwise.
pub const TELEGRAM_API_BASE_URL: &str = "https://api.telegram.org";

/// Chat channels of one user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telegram: Option<TelegramConfig>,
}

/// `[channels.telegram]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// Where the bot token is (`{ env = "…" }` or `{ file = "…" }`).
    pub bot_token: CredentialRef,
    /// Telegram user ids allowed to talk to the agent. Required and never
    /// empty: there is no open mode.
    #[serde(default, deserialize_with = "platform_ids")]
    pub allowed_sender_ids: Vec<String>,
    #[serde(default = "default_api_base_url")]
    pub api_base_url: String,
    /// Sent (at most every ten minutes per chat) to someone refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_message: Option<String>,
    /// Group chats the agent takes part in; none unless listed.
    #[serde(
        default,
        deserialize_with = "platform_ids",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub allowed_chat_ids: Vec<String>,
}

fn default_api_base_url() -> String {
    TELEGRAM_API_BASE_URL.to_owned()
}

/// Ids as written: `"12345678"` or `12345678`.
fn platform_ids<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(i64),
    }
    Ok(Vec::<Id>::deserialize(deserializer)?
        .into_iter()
        .map(|id| match id {
            Id::Text(text) => text,
            Id::Number(number) => number.to_string(),
        })
        .collect())
}

/// The allowlists as numbers, as Telegram sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramAllowlists {
    pub senders: BTreeSet<i64>,
    pub chats: BTreeSet<i64>,
}

fn parse_ids(key: &str, ids: &[String], what: &str) -> Result<BTreeSet<i64>, String> {
    ids.iter()
        .map(|id| {
            id.trim().parse::<i64>().map_err(|_| {
                format!("channels.telegram.{key}: '{id}' is not a Telegram {what} id (a number)")
            })
        })
        .collect()
}

impl TelegramConfig {
    /// Checks the table; the message names the key and what to write.
    pub fn validate(&self) -> Result<TelegramAllowlists, String> {
        if self.allowed_sender_ids.is_empty() {
            return Err(
                "channels.telegram.allowed_sender_ids is missing or empty: there is no \
                 open mode; list the Telegram user ids allowed to talk to the agent (message \
                 @userinfobot on Telegram to learn yours)"
                    .to_owned(),
            );
        }
        let senders = parse_ids("allowed_sender_ids", &self.allowed_sender_ids, "user")?;
        let chats = parse_ids("allowed_chat_ids", &self.allowed_chat_ids, "chat")?;
        let url = self.api_base_url.trim();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!(
                "channels.telegram.api_base_url '{url}' is not an http(s) URL (the default is {TELEGRAM_API_BASE_URL})"
            ));
        }
        if self
            .reject_message
            .as_deref()
            .is_some_and(|text| text.trim().is_empty())
        {
            return Err(
                "channels.telegram.reject_message is empty; remove it to refuse silently"
                    .to_owned(),
            );
        }
        Ok(TelegramAllowlists { senders, chats })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TelegramConfig, String> {
        let config: ChannelsConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        let telegram = config.telegram.ok_or("no telegram table")?;
        telegram.validate()?;
        Ok(telegram)
    }

    #[test]
    fn a_complete_table_parses_with_ids_as_text_or_numbers() {
        let telegram = parse(
            "[telegram]\nbot_token = { env = \"TELEGRAM_BOT_TOKEN\" }\n\
             allowed_sender_ids = [\"12345678\", 42]\nallowed_chat_ids = [-1001]\n\
             reject_message = \"This bot is private.\"\n",
        )
        .unwrap();
        assert_eq!(telegram.api_base_url, TELEGRAM_API_BASE_URL);
        let lists = telegram.validate().unwrap();
        assert_eq!(lists.senders, BTreeSet::from([42, 12_345_678]));
        assert_eq!(lists.chats, BTreeSet::from([-1001]));
        assert_eq!(
            telegram.bot_token,
            CredentialRef::Env("TELEGRAM_BOT_TOKEN".into())
        );
    }

    #[test]
    fn mistakes_are_named() {
        let token = "[telegram]\nbot_token = { file = \"/run/secrets/tg\" }\n";
        let open = parse(token).unwrap_err();
        assert!(
            open.contains("allowed_sender_ids is missing or empty"),
            "{open}"
        );
        let bad_id = parse(&format!("{token}allowed_sender_ids = [\"@alice\"]\n")).unwrap_err();
        assert!(
            bad_id.contains("'@alice' is not a Telegram user id"),
            "{bad_id}"
        );
        let bad_url = parse(&format!(
            "{token}allowed_sender_ids = [\"1\"]\napi_base_url = \"api.telegram.org\"\n"
        ))
        .unwrap_err();
        assert!(bad_url.contains("not an http(s) URL"), "{bad_url}");
        let typo = parse(&format!("{token}allowed_senders = [\"1\"]\n")).unwrap_err();
        assert!(typo.contains("allowed_senders"), "{typo}");
        let no_token = parse("[telegram]\nallowed_sender_ids = [\"1\"]\n").unwrap_err();
        assert!(no_token.contains("bot_token"), "{no_token}");
    }
}
