//! The quote-aware scan of the raw command line, following POSIX `sh`
//! quoting (and refusing the bash-only forms that would change a word).
//!
//! Outside quotes, a backslash makes the next character literal. Inside
//! single quotes nothing is special. Inside double quotes, `\` escapes only
//! `$`, `` ` ``, `"`, `\` and a newline, and `$(…)`, backticks and `$NAME`
//! still expand. The scan produces the words with quotes removed, which must
//! equal what `shell_words` produces, plus whether the shell will still
//! change each word (a variable, a leading `~`, a wildcard).

use std::iter::{Enumerate, Peekable};
use std::str::Chars;

use super::{Operator, Quote, ShellPolicyViolation as Violation, Substitution};

type Input<'a> = Peekable<Enumerate<Chars<'a>>>;

/// Longest expansion quoted back in a message.
const MAX_QUOTED_EXPANSION_CHARS: usize = 40;

/// One word of the command line after quote removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Word {
    /// The word without quotes and escapes; `$NAME` references, `~` and
    /// wildcards are kept as written, as `shell_words` keeps them.
    pub(super) text: String,
    /// False when the shell will change the word before the program sees
    /// it: a `$NAME` expansion, a leading `~` or an unquoted wildcard.
    pub(super) literal: bool,
    /// Whether the shell may turn the word into several (an unquoted
    /// wildcard or `$NAME`), shifting the position of every later word.
    pub(super) splits: bool,
}

#[derive(Debug, Default)]
struct WordBuilder {
    text: String,
    /// A word exists even if empty (`''`).
    started: bool,
    expands: bool,
    /// An unquoted `$NAME` (field splitting applies).
    unquoted_expansion: bool,
    /// Byte offset in `text` of the first unquoted `*`, `?` or `[`.
    wildcard_at: Option<usize>,
    /// Unquoted `{` not yet closed.
    brace_depth: usize,
    /// An unquoted `,` or `..` inside unquoted braces: bash expands it.
    brace_expansion: bool,
    /// The previous character was an unquoted `.`.
    after_dot: bool,
}

impl WordBuilder {
    fn expanded(&mut self, in_double_quotes: bool) {
        self.expands = true;
        self.unquoted_expansion |= !in_double_quotes;
    }

    fn push(&mut self, c: char) {
        self.started = true;
        self.text.push(c);
    }

    /// Ends the current word, if any, checking the rules that need it whole.
    fn finish(&mut self, words: &mut Vec<Word>) -> Result<(), Violation> {
        let word = std::mem::take(self);
        if !word.started {
            return Ok(());
        }
        if word.brace_expansion {
            return Err(Violation::BraceExpansion { word: word.text });
        }
        if let Some(at) = word.wildcard_at {
            // Anchored (`./*.rs`, `src/*`, `/shared/*`), an expansion can only
            // produce paths that start like the literal prefix, so never an
            // option, a subcommand or a script.
            let anchored = word.text[..at].contains('/') && !word.text.starts_with('-');
            if !anchored {
                return Err(Violation::UnanchoredWildcard { word: word.text });
            }
        }
        words.push(Word {
            literal: !word.expands && word.wildcard_at.is_none(),
            splits: word.unquoted_expansion || word.wildcard_at.is_some(),
            text: word.text,
        });
        Ok(())
    }
}

/// Splits `command` into words, refusing every construct that would make
/// `sh -c` do more than run one program with these words.
pub(super) fn scan(command: &str) -> Result<Vec<Word>, Violation> {
    if command.contains('\0') {
        return Err(Violation::NulByte);
    }
    if command.contains('\r') {
        return Err(Violation::LineBreak);
    }
    let mut words = Vec::new();
    let mut word = WordBuilder::default();
    let mut input = command.chars().enumerate().peekable();
    while let Some((position, c)) = input.next() {
        let mut dot = false;
        match c {
            ' ' | '\t' => word.finish(&mut words)?,
            '\n' => return Err(Violation::LineBreak),
            '\'' => single_quoted(&mut input, &mut word, position)?,
            '"' => double_quoted(&mut input, &mut word, position)?,
            '\\' => match input.next() {
                None => word.push('\\'),
                Some((_, '\n')) => return Err(Violation::LineBreak),
                Some((_, escaped)) => word.push(escaped),
            },
            '#' if !word.started => return Err(Violation::Comment),
            ';' => return Err(operator(Operator::Semicolon)),
            '&' => {
                return Err(operator(match input.peek() {
                    Some((_, '&')) => Operator::And,
                    Some((_, '>')) => Operator::RedirectOut,
                    _ => Operator::Background,
                }));
            }
            '|' => {
                let or = matches!(input.peek(), Some((_, '|')));
                return Err(operator(if or { Operator::Or } else { Operator::Pipe }));
            }
            '>' => {
                let append = matches!(input.peek(), Some((_, '>')));
                return Err(operator(if append {
                    Operator::Append
                } else {
                    Operator::RedirectOut
                }));
            }
            '<' => {
                let here = matches!(input.peek(), Some((_, '<')));
                return Err(operator(if here {
                    Operator::HereDoc
                } else {
                    Operator::RedirectIn
                }));
            }
            '(' | ')' => return Err(operator(Operator::Parenthesis)),
            '`' => {
                return Err(Violation::CommandSubstitution {
                    form: Substitution::Backticks,
                });
            }
            '$' => dollar(&mut input, &mut word, false)?,
            '*' | '?' | '[' => {
                word.wildcard_at.get_or_insert(word.text.len());
                word.push(c);
            }
            '~' if !word.started => {
                word.expands = true;
                word.push(c);
            }
            '{' => {
                word.brace_depth += 1;
                word.push(c);
            }
            '}' => {
                word.brace_depth = word.brace_depth.saturating_sub(1);
                word.push(c);
            }
            ',' | '.' => {
                let inside = word.brace_depth > 0;
                if inside && (c == ',' || word.after_dot) {
                    word.brace_expansion = true;
                }
                dot = c == '.';
                word.push(c);
            }
            _ => word.push(c),
        }
        word.after_dot = dot;
    }
    word.finish(&mut words)?;
    Ok(words)
}

fn operator(operator: Operator) -> Violation {
    Violation::Operator { operator }
}

fn single_quoted(
    input: &mut Input<'_>,
    word: &mut WordBuilder,
    at: usize,
) -> Result<(), Violation> {
    word.started = true;
    loop {
        match input.next() {
            None => {
                return Err(Violation::UnbalancedQuote {
                    quote: Quote::Single,
                    position: at + 1,
                });
            }
            Some((_, '\'')) => return Ok(()),
            Some((_, c)) => word.push(c),
        }
    }
}

fn double_quoted(
    input: &mut Input<'_>,
    word: &mut WordBuilder,
    at: usize,
) -> Result<(), Violation> {
    let unbalanced = Violation::UnbalancedQuote {
        quote: Quote::Double,
        position: at + 1,
    };
    word.started = true;
    loop {
        match input.next() {
            None => return Err(unbalanced),
            Some((_, '"')) => return Ok(()),
            Some((_, '\\')) => match input.next() {
                None => return Err(unbalanced),
                // A line continuation: removed by `sh` and `shell_words`.
                Some((_, '\n')) => {}
                Some((_, c @ ('$' | '`' | '"' | '\\'))) => word.push(c),
                Some((_, c)) => {
                    word.push('\\');
                    word.push(c);
                }
            },
            Some((_, '`')) => {
                return Err(Violation::CommandSubstitution {
                    form: Substitution::Backticks,
                });
            }
            Some((_, '$')) => dollar(input, word, true)?,
            Some((_, c)) => word.push(c),
        }
    }
}

/// After a `$`: allows `$NAME`, `${NAME}` and the special parameters, and
/// refuses every other expansion. A `$` that starts none is literal.
fn dollar(
    input: &mut Input<'_>,
    word: &mut WordBuilder,
    in_double_quotes: bool,
) -> Result<(), Violation> {
    word.push('$');
    let Some(&(_, next)) = input.peek() else {
        return Ok(());
    };
    match next {
        '(' => {
            input.next();
            if matches!(input.peek(), Some((_, '('))) {
                return Err(unsupported("$((…))".to_owned()));
            }
            Err(Violation::CommandSubstitution {
                form: Substitution::Dollar,
            })
        }
        '[' => Err(unsupported("$[…]".to_owned())),
        // bash ANSI-C (`$'\x2d'`) and locale (`$"…"`) quoting would turn the
        // word into something `shell_words` never saw; in double quotes the
        // `$` is literal.
        '\'' | '"' if !in_double_quotes => Err(unsupported(format!("${next}…{next}"))),
        '{' => {
            input.next();
            let mut inner = String::new();
            loop {
                match input.next() {
                    None => return Err(unsupported(format!("${{{inner}"))),
                    Some((_, '}')) => break,
                    Some((_, c)) => inner.push(c),
                }
            }
            if !(is_name(&inner) || is_special_parameter(&inner)) {
                return Err(unsupported(format!("${{{inner}}}")));
            }
            word.expanded(in_double_quotes);
            word.push('{');
            inner.chars().for_each(|c| word.push(c));
            word.push('}');
            Ok(())
        }
        c if c.is_ascii_alphabetic() || c == '_' => {
            word.expanded(in_double_quotes);
            while let Some(&(_, c)) = input.peek() {
                if !(c.is_ascii_alphanumeric() || c == '_') {
                    break;
                }
                word.push(c);
                input.next();
            }
            Ok(())
        }
        c if is_special_parameter(c.encode_utf8(&mut [0; 4])) => {
            word.expanded(in_double_quotes);
            word.push(c);
            input.next();
            Ok(())
        }
        _ => Ok(()),
    }
}

fn unsupported(mut expansion: String) -> Violation {
    if let Some((cut, _)) = expansion.char_indices().nth(MAX_QUOTED_EXPANSION_CHARS) {
        expansion.truncate(cut);
        expansion.push('…');
    }
    Violation::UnsupportedExpansion { expansion }
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `$1`…`$9`, `$@`, `$*`, `$#`, `$?`, `$$`, `$!`, `$-`, and `${10}`.
fn is_special_parameter(text: &str) -> bool {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) if c.is_ascii_digit() => chars.all(|c| c.is_ascii_digit()),
        Some(c) if "@*#?$!-".contains(c) => chars.next().is_none(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(command: &str) -> Vec<String> {
        scan(command)
            .unwrap()
            .into_iter()
            .map(|word| word.text)
            .collect()
    }

    fn refused(command: &str) -> Violation {
        scan(command).expect_err(command)
    }

    #[test]
    fn splits_like_shell_words() {
        let cases = [
            r#"grep -rn "fn main" /shared/src"#,
            r"find . -name '*.rs' -print",
            r"a\ b 'c d' ''",
            r#""a\"b" "\$HOME" "\x" 'it'\''s'"#,
            r"ls \; \& \| \> \< \( \)",
            "awk '{print $1}' f.txt",
            "echo $HOME ${USER} \"$PWD\" $1 $@",
            "git log HEAD@{1}..HEAD",
            "trailing\\",
            "\"multi\nline\"",
        ];
        for case in cases {
            assert_eq!(texts(case), shell_words::split(case).unwrap(), "{case}");
        }
    }

    #[test]
    fn escaped_semicolon_is_a_literal_word() {
        assert_eq!(
            texts(r"find . -name x \;"),
            ["find", ".", "-name", "x", ";"]
        );
    }

    #[test]
    fn operators_only_count_outside_quotes() {
        for quoted in [
            "grep 'a|b' f",
            r#"grep "x > y" f"#,
            "echo 'a; b && c'",
            r"echo a\&\&b",
        ] {
            assert!(scan(quoted).is_ok(), "{quoted}");
        }
        let cases = [
            ("a && b", Operator::And),
            ("a || b", Operator::Or),
            ("a; b", Operator::Semicolon),
            ("a | b", Operator::Pipe),
            ("a |& b", Operator::Pipe),
            ("a &", Operator::Background),
            ("a &> f", Operator::RedirectOut),
            ("a > f", Operator::RedirectOut),
            ("a 2>&1", Operator::RedirectOut),
            ("a >> f", Operator::Append),
            ("a < f", Operator::RedirectIn),
            ("a <(b)", Operator::RedirectIn),
            ("a << EOF", Operator::HereDoc),
            ("(a)", Operator::Parenthesis),
        ];
        for (command, expected) in cases {
            assert_eq!(
                refused(command),
                Violation::Operator { operator: expected },
                "{command}"
            );
        }
    }

    #[test]
    fn substitution_is_refused_unquoted_and_in_double_quotes() {
        for command in ["echo $(id)", r#"echo "$(id)""#, r#"echo "a$(id)b""#] {
            assert_eq!(
                refused(command),
                Violation::CommandSubstitution {
                    form: Substitution::Dollar
                }
            );
        }
        for command in ["echo `id`", r#"echo "`id`""#] {
            assert_eq!(
                refused(command),
                Violation::CommandSubstitution {
                    form: Substitution::Backticks
                }
            );
        }
        assert!(scan("echo '$(id)' '`id`' \\$\\(id\\)").is_ok());
    }

    #[test]
    fn only_plain_variables_expand() {
        let words = scan(r#"echo $HOME "${USER}" $1 $$ cost$ "$'x" '$(x)'"#).unwrap();
        let literal: Vec<bool> = words.iter().map(|word| word.literal).collect();
        assert_eq!(
            literal,
            [true, false, false, false, false, true, true, true]
        );
        for command in [
            "echo ${X:-y}",
            "echo ${#X}",
            "echo ${X",
            "echo $((1+1))",
            "echo $[1]",
            "echo $'\\x2d'",
            r#"echo $"x""#,
        ] {
            assert!(
                matches!(refused(command), Violation::UnsupportedExpansion { .. }),
                "{command}"
            );
        }
    }

    #[test]
    fn unbalanced_quotes_report_the_opening_position() {
        assert_eq!(
            refused("echo 'abc"),
            Violation::UnbalancedQuote {
                quote: Quote::Single,
                position: 6
            }
        );
        assert_eq!(
            refused(r#"a "b\"#),
            Violation::UnbalancedQuote {
                quote: Quote::Double,
                position: 3
            }
        );
    }

    #[test]
    fn line_breaks_comments_and_nul() {
        assert_eq!(refused("ls\nid"), Violation::LineBreak);
        assert_eq!(refused("ls \\\nid"), Violation::LineBreak);
        assert_eq!(refused("ls 'a\rb'"), Violation::LineBreak);
        assert_eq!(refused("ls\0"), Violation::NulByte);
        assert_eq!(refused("grep -rn #include ."), Violation::Comment);
        assert!(scan("grep -rn '#include' a#b").is_ok());
    }

    #[test]
    fn wildcards_must_be_anchored_to_a_directory() {
        for anchored in [
            "ls ./*.rs",
            "cat src/*.rs",
            "ls /shared/*",
            "ls ~/x/*",
            "find . -name '*.rs'",
        ] {
            assert!(scan(anchored).is_ok(), "{anchored}");
        }
        for bare in [
            "ls *.rs",
            "tar -czf out.tgz *",
            "grep [a-z] f",
            "curl x?a",
            "find . -exe? x",
            "ls -*/x",
        ] {
            assert!(
                matches!(refused(bare), Violation::UnanchoredWildcard { .. }),
                "{bare}"
            );
        }
        let words = scan(r#"ls ./*.rs \*.rs $HOME "$HOME" ~/x"#).unwrap();
        let literal: Vec<(bool, bool)> = words
            .iter()
            .map(|word| (word.literal, word.splits))
            .collect();
        let expected = [
            (true, false),
            (false, true),
            (true, false),
            (false, true),
            (false, false),
            (false, false),
        ];
        assert_eq!(literal, expected);
    }

    #[test]
    fn brace_expansion_is_refused_but_braces_alone_are_not() {
        for command in [
            "echo {a,b}",
            "find . {-exec,x}",
            "echo {1..3}",
            "echo x{a,{b,c}}",
        ] {
            assert!(
                matches!(refused(command), Violation::BraceExpansion { .. }),
                "{command}"
            );
        }
        for command in [
            "git show HEAD@{1}",
            "git log HEAD@{1}..HEAD",
            "echo '{a,b}'",
            "echo {}",
            "echo a,b..",
        ] {
            assert!(scan(command).is_ok(), "{command}");
        }
    }
}
