//! Just enough of GNU `getopt_long` to tell options, option values and
//! operands apart, so a check knows which word is a script, a program to
//! run or a file name.
//!
//! Getting this wrong in the unsafe direction means treating a script as an
//! option value (and not inspecting it), so programs whose script position
//! matters are parsed strictly: an option the syntax does not know is an
//! error, not a guess.

use super::syntax::Word;

/// How a program spells its options.
#[derive(Debug)]
pub(super) struct Syntax {
    /// Short options without a value; `None` treats every letter not listed
    /// below as one (lenient), `Some` makes other letters unknown.
    pub(super) short_flags: Option<&'static str>,
    /// Short options taking a value, attached (`-e…`) or the next word.
    pub(super) short_value: &'static str,
    /// Short options taking an optional value, attached only (`-i.bak`).
    pub(super) short_optional: &'static str,
    /// Short options taking a value after which option parsing stops
    /// (`python -c`, `-m`).
    pub(super) short_last: &'static str,
    /// Long options without a value, space-separated.
    pub(super) long_flags: &'static str,
    /// Long options taking a value, `--name=value` or the next word.
    pub(super) long_value: &'static str,
    /// Long options taking an optional value, `--name=value` only.
    pub(super) long_optional: &'static str,
    /// What an unknown long option is.
    pub(super) unknown_long: UnknownLong,
    /// Unambiguous prefixes of long options are accepted (getopt_long).
    pub(super) abbreviations: bool,
    /// `_` in a long option name means `-` (node).
    pub(super) underscores: bool,
    /// Options may follow operands (GNU permutation); otherwise the first
    /// operand ends option parsing.
    pub(super) permute: bool,
}

impl Syntax {
    /// A syntax where nothing is known yet; fill in what the program has.
    pub(super) const EMPTY: Self = Self {
        short_flags: None,
        short_value: "",
        short_optional: "",
        short_last: "",
        long_flags: "",
        long_value: "",
        long_optional: "",
        unknown_long: UnknownLong::Flag,
        abbreviations: false,
        underscores: false,
        permute: false,
    };
}

/// How [`parse`] treats a long option it does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UnknownLong {
    /// As a flag without a value.
    Flag,
    /// As an error.
    Reject,
    /// As an error unless written `--name=value`, which cannot swallow the
    /// next word whatever the option means.
    RejectUnlessAttached,
}

/// One option found by [`parse`].
#[derive(Debug)]
pub(super) struct Opt<'a> {
    /// The word the option was written in.
    pub(super) word: &'a Word,
    pub(super) name: Name<'a>,
    pub(super) value: Option<Value<'a>>,
}

/// An option's name: a letter, or a long name resolved to its full
/// spelling when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Name<'a> {
    Short(char),
    Long(&'a str),
}

/// An option's value.
#[derive(Debug, Clone, Copy)]
pub(super) struct Value<'a> {
    pub(super) text: &'a str,
    /// Whether the word holding the value reaches the program unchanged.
    pub(super) literal: bool,
}

impl<'a> Value<'a> {
    pub(super) fn of(word: &'a Word) -> Self {
        Self {
            text: &word.text,
            literal: word.literal,
        }
    }
}

/// The options and operands of one command line.
#[derive(Debug, Default)]
pub(super) struct Parsed<'a> {
    pub(super) options: Vec<Opt<'a>>,
    /// Operands with their index in the parsed words.
    pub(super) operands: Vec<(usize, &'a Word)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Flag,
    Value,
    Optional,
}

/// Why [`parse`] gave up.
#[derive(Debug, Clone, Copy)]
pub(super) enum ParseError<'a> {
    /// An option the syntax does not know (its word).
    Unknown(&'a Word),
    /// An option value in its own word that the shell may split into
    /// several, so the words after it could land anywhere (the value).
    SplitValue(&'a Word),
}

/// Parses `words` (the arguments after the program) with `syntax`.
///
/// # Errors
///
/// An unknown option, or a separate option value that may split.
pub(super) fn parse<'a>(words: &'a [Word], syntax: &Syntax) -> Result<Parsed<'a>, ParseError<'a>> {
    let mut parsed = Parsed::default();
    let mut only_operands = false;
    let mut index = 0;
    while let Some(word) = words.get(index) {
        index += 1;
        let text = word.text.as_str();
        if only_operands || text == "-" || !text.starts_with('-') {
            parsed.operands.push((index - 1, word));
            only_operands |= !syntax.permute;
            continue;
        }
        if text == "--" {
            only_operands = true;
            continue;
        }
        let mut next_value = || match words.get(index) {
            Some(value) if value.splits => Err(ParseError::SplitValue(value)),
            Some(value) => {
                index += 1;
                Ok(Some(Value::of(value)))
            }
            None => Ok(None),
        };
        if let Some(body) = text.strip_prefix("--") {
            let (given, attached) = match body.split_once('=') {
                Some((name, value)) => (
                    name,
                    Some(Value {
                        text: value,
                        literal: word.literal,
                    }),
                ),
                None => (body, None),
            };
            let (name, kind) = match resolve_long(given, syntax) {
                Some(known) => known,
                None => match syntax.unknown_long {
                    UnknownLong::Flag => (given, Kind::Flag),
                    UnknownLong::RejectUnlessAttached if attached.is_some() => (given, Kind::Flag),
                    UnknownLong::Reject | UnknownLong::RejectUnlessAttached => {
                        return Err(ParseError::Unknown(word));
                    }
                },
            };
            let value = match kind {
                Kind::Value if attached.is_none() => next_value()?,
                Kind::Flag | Kind::Value | Kind::Optional => attached,
            };
            parsed.options.push(Opt {
                word,
                name: Name::Long(name),
                value,
            });
            continue;
        }
        for (at, letter) in text.char_indices().skip(1) {
            let rest = &text[at + letter.len_utf8()..];
            let attached = (!rest.is_empty()).then_some(Value {
                text: rest,
                literal: word.literal,
            });
            let takes_value =
                syntax.short_value.contains(letter) || syntax.short_last.contains(letter);
            let value = if takes_value {
                match attached {
                    Some(value) => Some(value),
                    None => next_value()?,
                }
            } else if syntax.short_optional.contains(letter) {
                attached
            } else if syntax
                .short_flags
                .is_none_or(|flags| flags.contains(letter))
            {
                parsed.options.push(Opt {
                    word,
                    name: Name::Short(letter),
                    value: None,
                });
                continue;
            } else {
                return Err(ParseError::Unknown(word));
            };
            parsed.options.push(Opt {
                word,
                name: Name::Short(letter),
                value,
            });
            only_operands |= syntax.short_last.contains(letter);
            // The rest of the cluster was this option's value.
            break;
        }
    }
    Ok(parsed)
}

/// The full name and kind of a long option, exact or abbreviated.
fn resolve_long(given: &str, syntax: &Syntax) -> Option<(&'static str, Kind)> {
    let normalised = if syntax.underscores {
        given.replace('_', "-")
    } else {
        given.to_owned()
    };
    let known = || {
        let kinds = [
            (syntax.long_flags, Kind::Flag),
            (syntax.long_value, Kind::Value),
            (syntax.long_optional, Kind::Optional),
        ];
        kinds
            .into_iter()
            .flat_map(|(names, kind)| names.split_ascii_whitespace().map(move |name| (name, kind)))
    };
    if let Some(exact) = known().find(|(name, _)| *name == normalised) {
        return Some(exact);
    }
    if !syntax.abbreviations || normalised.is_empty() {
        return None;
    }
    let mut candidates = known().filter(|(name, _)| name.starts_with(&normalised));
    match (candidates.next(), candidates.next()) {
        (Some(only), None) => Some(only),
        // Ambiguous or unknown: the real program refuses it.
        _ => None,
    }
}

/// Whether `word` could be the long option `name`: exactly, with `=value`,
/// or as any prefix, which getopt_long accepts when unambiguous.
pub(super) fn is_long(word: &str, name: &str) -> bool {
    let Some(given) = word.strip_prefix("--") else {
        return false;
    };
    let given = given.split_once('=').map_or(given, |(given, _)| given);
    !given.is_empty() && name.starts_with(given)
}

/// Whether the short-option cluster `word` (`-xvf`) contains `letter`
/// before a letter from `value_letters` takes the rest as its value.
pub(super) fn cluster_has(word: &str, letter: char, value_letters: &str) -> bool {
    let Some(cluster) = word.strip_prefix('-') else {
        return false;
    };
    if cluster.starts_with('-') {
        return false;
    }
    for c in cluster.chars() {
        if c == letter {
            return true;
        }
        if value_letters.contains(c) {
            return false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<Word> {
        line.split(' ')
            .map(|text| {
                let splits = text.contains('*');
                Word {
                    text: text.to_owned(),
                    literal: !splits,
                    splits,
                    variables: Vec::new(),
                }
            })
            .collect()
    }

    const SED_LIKE: Syntax = Syntax {
        short_flags: Some("n"),
        short_value: "e",
        short_optional: "i",
        long_flags: "quiet posix",
        long_value: "expression file",
        unknown_long: UnknownLong::Reject,
        abbreviations: true,
        permute: true,
        ..Syntax::EMPTY
    };

    fn summary(line: &str, syntax: &Syntax) -> Result<Vec<String>, String> {
        let words = words(line);
        let parsed = parse(&words, syntax).map_err(|error| match error {
            ParseError::Unknown(word) => word.text.clone(),
            ParseError::SplitValue(word) => format!("split {}", word.text),
        })?;
        let mut out: Vec<String> = parsed
            .options
            .iter()
            .map(|opt| {
                let name = match opt.name {
                    Name::Short(c) => c.to_string(),
                    Name::Long(name) => name.to_owned(),
                };
                format!("{name}={}", opt.value.map_or("", |value| value.text))
            })
            .collect();
        out.extend(
            parsed
                .operands
                .iter()
                .map(|(at, word)| format!("{at}:{}", word.text)),
        );
        Ok(out)
    }

    #[test]
    fn clusters_values_and_permutation() {
        assert_eq!(summary("-ne p f", &SED_LIKE).unwrap(), ["n=", "e=p", "2:f"]);
        assert_eq!(summary("-nep f", &SED_LIKE).unwrap(), ["n=", "e=p", "1:f"]);
        assert_eq!(summary("-ie p", &SED_LIKE).unwrap(), ["i=e", "1:p"]);
        assert_eq!(summary("f -e p", &SED_LIKE).unwrap(), ["e=p", "0:f"]);
        assert_eq!(summary("-- -e", &SED_LIKE).unwrap(), ["1:-e"]);
        assert_eq!(summary("-n - x", &SED_LIKE).unwrap(), ["n=", "1:-", "2:x"]);
    }

    #[test]
    fn long_options_resolve_abbreviations() {
        assert_eq!(summary("--expr p", &SED_LIKE).unwrap(), ["expression=p"]);
        assert_eq!(
            summary("--expression=a=b", &SED_LIKE).unwrap(),
            ["expression=a=b"]
        );
        assert_eq!(summary("--qu", &SED_LIKE).unwrap(), ["quiet="]);
        assert_eq!(summary("--p", &SED_LIKE).unwrap(), ["posix="]);
        assert_eq!(summary("--bogus", &SED_LIKE), Err("--bogus".to_owned()));
        assert_eq!(summary("-x", &SED_LIKE), Err("-x".to_owned()));
    }

    #[test]
    fn without_permutation_the_first_operand_ends_options() {
        let syntax = Syntax {
            short_value: "I",
            ..Syntax::EMPTY
        };
        assert_eq!(
            summary("-I {} ls -e", &syntax).unwrap(),
            ["I={}", "2:ls", "3:-e"]
        );
        let last = Syntax {
            short_last: "c",
            ..Syntax::EMPTY
        };
        assert_eq!(
            summary("-Bc code -x", &last).unwrap(),
            ["B=", "c=code", "2:-x"]
        );
    }

    #[test]
    fn a_separate_value_must_not_split() {
        // `-e ./*` could become `-e ./a ./b`, making `./b` the next operand.
        assert_eq!(summary("-e ./* f", &SED_LIKE), Err("split ./*".to_owned()));
        assert_eq!(
            summary("--file ./* f", &SED_LIKE),
            Err("split ./*".to_owned())
        );
        assert_eq!(
            summary("-n ./* f", &SED_LIKE).unwrap(),
            ["n=", "1:./*", "2:f"]
        );
    }

    #[test]
    fn unknown_long_options() {
        let attached = Syntax {
            unknown_long: UnknownLong::RejectUnlessAttached,
            ..Syntax::EMPTY
        };
        assert_eq!(
            summary("--max-old-space-size=4 x", &attached).unwrap(),
            ["max-old-space-size=4", "1:x"]
        );
        assert_eq!(summary("--title x", &attached), Err("--title".to_owned()));
        let underscores = Syntax {
            long_value: "env-file",
            underscores: true,
            ..Syntax::EMPTY
        };
        assert_eq!(
            summary("--env_file x y", &underscores).unwrap(),
            ["env-file=x", "2:y"]
        );
    }

    #[test]
    fn word_matchers() {
        assert!(is_long("--to-command=sh", "to-command"));
        assert!(is_long("--to-com", "to-command"));
        assert!(!is_long("--to-stdout", "to-command"));
        assert!(!is_long("-to-command", "to-command"));
        assert!(!is_long("--", "to-command"));
        assert!(cluster_has("-xvI", 'I', "f"));
        assert!(!cluster_has("-fI", 'I', "f"));
        assert!(!cluster_has("--I", 'I', ""));
        assert!(!cluster_has("I", 'I', ""));
    }
}
