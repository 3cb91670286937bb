//! Turning user text into a safe FTS5 query. The text is never passed to
//! `MATCH` as is: it is split into words (letters and digits), each word
//! becomes a double-quoted string (quotes doubled, though words hold none),
//! the strings are joined with `OR`, and the whole is limited to the
//! `chunk_text` column (a word never matches a session key). FTS5 operators in the input —
//! `"`, `*`, `^`, `NEAR(`, `AND`/`OR`/`NOT`, `-`, `:` column filters,
//! parentheses — can therefore only ever be searched for as words, never
//! parsed as syntax.

/// Words used from one query; the rest is ignored (bounded query cost).
const MAX_TERMS: usize = 32;

/// The `MATCH` expression for `query` over chunk text, or `None` when it
/// has no words.
pub fn match_expression(query: &str) -> Option<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let word = word.to_lowercase();
        if !terms.contains(&word) {
            terms.push(word);
        }
        if terms.len() == MAX_TERMS {
            break;
        }
    }
    if terms.is_empty() {
        return None;
    }
    let alternatives = terms
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" OR ");
    Some(format!("chunk_text : ({alternatives})"))
}

/// `expression` restricted to the chunks of `sessions`: a session's key
/// is indexed in the `fts_session` column (migration 0004) as the
/// upper-case hex of its UTF-8 bytes, one token whatever the id holds.
pub(crate) fn in_sessions(sessions: &[String], expression: &str) -> String {
    let keys: Vec<String> = sessions
        .iter()
        .map(|id| {
            let key: String = id.bytes().map(|b| format!("{b:02X}")).collect();
            format!("\"{key}\"")
        })
        .collect();
    format!("fts_session : ({}) AND {expression}", keys.join(" OR "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<&str>) {
        let expected = expected.map(|terms| format!("chunk_text : ({terms})"));
        assert_eq!(match_expression(input), expected, "{input}");
    }

    #[test]
    fn words_become_quoted_alternatives() {
        check("deploy plan", Some("\"deploy\" OR \"plan\""));
        check("Deploy deploy DEPLOY", Some("\"deploy\""));
        check(
            "NEAR(a b) AND -c:d*",
            Some("\"near\" OR \"a\" OR \"b\" OR \"and\" OR \"c\" OR \"d\""),
        );
        check("\"unbalanced", Some("\"unbalanced\""));
        check("café naïve 東京", Some("\"café\" OR \"naïve\" OR \"東京\""));
        check("*** ((( ---", None);
        check("", None);
    }

    #[test]
    fn a_session_restriction_is_one_hex_token_per_session() {
        assert_eq!(
            in_sessions(&["s-1 é\"".into()], "chunk_text : (\"plan\")"),
            "fts_session : (\"732D3120C3A922\") AND chunk_text : (\"plan\")"
        );
        assert_eq!(
            in_sessions(&["a".into(), "b".into()], "chunk_text : (\"plan\")"),
            "fts_session : (\"61\" OR \"62\") AND chunk_text : (\"plan\")"
        );
    }

    #[test]
    fn long_queries_are_bounded() {
        let query: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
        let expression = match_expression(&query.join(" ")).unwrap();
        assert_eq!(expression.matches(" OR ").count(), MAX_TERMS - 1);
    }
}
