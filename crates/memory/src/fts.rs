//! Turning user text into a safe FTS5 query. The text is never passed to
//! `MATCH` as is: it is split into words (letters and digits), each word
//! becomes a double-quoted string (quotes doubled, though words hold none),
//! and the strings are joined with `OR`. FTS5 operators in the input —
//! `"`, `*`, `^`, `NEAR(`, `AND`/`OR`/`NOT`, `-`, `:` column filters,
//! parentheses — can therefore only ever be searched for as words, never
//! parsed as syntax.

/// Words used from one query; the rest is ignored (bounded query cost).
const MAX_TERMS: usize = 32;

/// The `MATCH` expression for `query`, or `None` when it has no words.
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
    Some(
        terms
            .iter()
            .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" OR "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<&str>) {
        assert_eq!(match_expression(input).as_deref(), expected, "{input}");
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
    fn long_queries_are_bounded() {
        let query: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
        let expression = match_expression(&query.join(" ")).unwrap();
        assert_eq!(expression.matches(" OR ").count(), MAX_TERMS - 1);
    }
}
