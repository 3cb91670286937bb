//! The quote-aware scan of the raw command line, following POSIX `sh`
//! quoting (and refusing the bash-only forms that would change a word).
//!
//! Outside quotes, a backslash makes the next character literal. Inside
//! single quotes nothing is special. Inside double quotes, `\` escapes only
//! `$`, `` ` ``, `"`, `\` and a newline, and `$(…)`, backticks and `$NAME`
//! still expand. The scan produces the words with quotes removed, which must
//! equal what `shell_words` produces, plus whether the shell will still
//! change each word (a variable, a leading `~`, a wildcard).
//!
//! With the strict syntax every unquoted operator is refused where it is
//! found. With the compound syntax the scan also returns the control
//! operators (`|`, `&&`, `||`, `;`) and the redirection operators it
//! accepts as tokens, each with its place in the line; `compound` puts them
//! together into simple commands. This is a small hand-written tokenizer on
//! purpose: no maintained crate parses POSIX `sh` into an AST with the
//! guarantee needed here, that every construct it does not model is
//! refused rather than skipped.

use std::iter::Peekable;
use std::ops::Range;
use std::str::CharIndices;

use types::config::ShellSyntax;

use super::{
    Connector, Operator, Quote, RedirectKind, RedirectionProblem,
    ShellPolicyViolation as Violation, Substitution,
};

type Input<'a> = Peekable<CharIndices<'a>>;

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
    /// The variables (and special parameters) the word expands, in or out
    /// of double quotes.
    pub(super) variables: Vec<String>,
}

/// One token of the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Token {
    Word(Word),
    /// `|`, `&&`, `||` or `;` (compound syntax only).
    Connector {
        connector: Connector,
        /// Where the operator is in the line (bytes).
        span: Range<usize>,
    },
    /// A redirection operator; its target is the next word (compound
    /// syntax only).
    Redirect {
        /// The descriptor written before the operator (`2>`), if any.
        fd: Option<u8>,
        kind: RedirectKind,
        /// The descriptor and the operator in the line (bytes).
        span: Range<usize>,
    },
}

#[derive(Debug, Default)]
struct WordBuilder {
    text: String,
    /// A word exists even if empty (`''`).
    started: bool,
    /// Some of it was quoted or escaped (so it cannot be a descriptor).
    quoted: bool,
    expands: bool,
    variables: Vec<String>,
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
    fn expanded(&mut self, name: &str, in_double_quotes: bool) {
        self.expands = true;
        self.unquoted_expansion |= !in_double_quotes;
        self.variables.push(name.to_owned());
    }

    fn push(&mut self, c: char) {
        self.started = true;
        self.text.push(c);
    }

    /// Ends the current word, if any, checking the rules that need it whole.
    fn finish(&mut self, tokens: &mut Vec<Token>) -> Result<(), Violation> {
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
        tokens.push(Token::Word(Word {
            literal: !word.expands && word.wildcard_at.is_none(),
            splits: word.unquoted_expansion || word.wildcard_at.is_some(),
            text: word.text,
            variables: word.variables,
        }));
        Ok(())
    }

    /// Before a redirection operator: a lone unquoted digit is the
    /// descriptor it applies to, and is taken out of the word list. bash
    /// and dash disagree on longer numbers (bash: a descriptor, dash: an
    /// argument) and on bash's `{name}>`, so both are refused. Any other
    /// word simply ends before the operator (`echo hi>out`).
    fn take_descriptor(
        &mut self,
        tokens: &mut Vec<Token>,
        operator: &str,
    ) -> Result<Option<u8>, Violation> {
        let plain = self.started && !self.quoted && !self.expands && self.wildcard_at.is_none();
        if plain && !self.text.is_empty() && self.text.bytes().all(|b| b.is_ascii_digit()) {
            if let [digit] = self.text.as_bytes() {
                let fd = digit - b'0';
                *self = Self::default();
                return Ok(Some(fd));
            }
            return Err(unsupported_redirection(
                format!("{}{operator}", self.text),
                RedirectionProblem::LongDescriptor,
            ));
        }
        if self.started && self.text.starts_with('{') && self.text.ends_with('}') {
            return Err(unsupported_redirection(
                format!("{}{operator}", self.text),
                RedirectionProblem::NamedDescriptor,
            ));
        }
        self.finish(tokens)?;
        Ok(None)
    }
}

fn unsupported_redirection(redirection: String, problem: RedirectionProblem) -> Violation {
    Violation::UnsupportedRedirection {
        redirection,
        problem,
    }
}

/// Splits `command` into tokens, refusing every construct that would make
/// `sh -c` do more than `syntax` allows: with the strict syntax, run one
/// program with these words (every token is a word); with the compound
/// syntax, run simple commands joined by pipes and lists, with
/// redirections.
pub(super) fn scan(command: &str, syntax: ShellSyntax) -> Result<Vec<Token>, Violation> {
    if command.contains('\0') {
        return Err(Violation::NulByte);
    }
    if command.contains('\r') {
        return Err(Violation::LineBreak);
    }
    let mut tokens = Vec::new();
    let mut word = WordBuilder::default();
    let mut input = command.char_indices().peekable();
    while let Some((at, c)) = input.next() {
        let mut dot = false;
        match c {
            ' ' | '\t' => word.finish(&mut tokens)?,
            '\n' => return Err(Violation::LineBreak),
            '\'' => single_quoted(&mut input, &mut word, command, at)?,
            '"' => double_quoted(&mut input, &mut word, command, at)?,
            '\\' => {
                word.quoted = true;
                match input.next() {
                    None => word.push('\\'),
                    Some((_, '\n')) => return Err(Violation::LineBreak),
                    Some((_, escaped)) => word.push(escaped),
                }
            }
            '#' if !word.started => return Err(Violation::Comment),
            ';' | '&' | '|' | '>' | '<' => match syntax {
                ShellSyntax::Strict => {
                    return Err(strict_operator(c, input.peek().map(|&(_, next)| next)));
                }
                ShellSyntax::Compound => {
                    compound_operator(c, at, &mut input, &mut word, &mut tokens)?;
                }
            },
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
    word.finish(&mut tokens)?;
    Ok(tokens)
}

/// The strict syntax refuses every unquoted `; & | > <`, naming the
/// operator `c` (followed by `next`) starts.
fn strict_operator(c: char, next: Option<char>) -> Violation {
    operator(match (c, next) {
        (';', _) => Operator::Semicolon,
        ('&', Some('&')) => Operator::And,
        ('&', Some('>')) => Operator::RedirectOut,
        ('&', _) => Operator::Background,
        ('|', Some('|')) => Operator::Or,
        ('|', _) => Operator::Pipe,
        ('>', Some('>')) => Operator::Append,
        ('>', _) => Operator::RedirectOut,
        ('<', Some('<')) => Operator::HereDoc,
        (_, _) => Operator::RedirectIn,
    })
}

/// The compound syntax turns `|`, `&&`, `||`, `;` and the accepted
/// redirections into tokens, and refuses background jobs and the operators
/// that bash and dash read differently.
fn compound_operator(
    c: char,
    at: usize,
    input: &mut Input<'_>,
    word: &mut WordBuilder,
    tokens: &mut Vec<Token>,
) -> Result<(), Violation> {
    let next = input.peek().map(|&(_, next)| next);
    let connector = match (c, next) {
        (';', _) => Connector::Semicolon,
        ('&', Some('&')) => Connector::And,
        // bash: both outputs to a file; dash: a background job, then `>`.
        ('&', Some('>')) => return Err(operator(Operator::RedirectBoth)),
        ('&', _) => return Err(operator(Operator::Background)),
        ('|', Some('|')) => Connector::Or,
        // bash: `2>&1 |`; dash: a syntax error.
        ('|', Some('&')) => return Err(operator(Operator::PipeStderr)),
        ('|', _) => Connector::Pipe,
        (_, _) => return redirection(c, at, next, input, word, tokens),
    };
    word.finish(tokens)?;
    let len = match connector {
        Connector::And | Connector::Or => {
            input.next();
            2
        }
        Connector::Pipe | Connector::Semicolon => 1,
    };
    tokens.push(Token::Connector {
        connector,
        span: at..at + len,
    });
    Ok(())
}

/// A redirection starting with `c` (`>` or `<`) at byte `at`.
fn redirection(
    c: char,
    at: usize,
    next: Option<char>,
    input: &mut Input<'_>,
    word: &mut WordBuilder,
    tokens: &mut Vec<Token>,
) -> Result<(), Violation> {
    let (kind, len) = match (c, next) {
        ('>', Some('>')) => (RedirectKind::Append, 2),
        ('>', Some('&')) => (RedirectKind::DuplicateOutput, 2),
        ('>', Some('|')) => return Err(operator(Operator::Clobber)),
        ('<', Some('<')) => return Err(operator(Operator::HereDoc)),
        ('<', Some('&')) => (RedirectKind::DuplicateInput, 2),
        ('<', Some('>')) => return Err(operator(Operator::ReadWrite)),
        (_, Some('(')) => return Err(operator(Operator::ProcessSubstitution)),
        ('>', _) => (RedirectKind::Output, 1),
        (_, _) => (RedirectKind::Input, 1),
    };
    let fd = word.take_descriptor(tokens, kind.operator())?;
    if len == 2 {
        input.next();
    }
    // A descriptor is one unquoted ASCII digit right before the operator.
    let start = if fd.is_some() { at - 1 } else { at };
    tokens.push(Token::Redirect {
        fd,
        kind,
        span: start..at + len,
    });
    Ok(())
}

/// Every raw stretch of `command` between two operator tokens must split,
/// with `shell_words`, into exactly the words the scan found there: two
/// independent tokenisers agree, or a quoting construct one of them
/// misreads could hide an argument from the checks. With the strict
/// syntax the stretch is the whole line.
pub(super) fn words_agree(command: &str, tokens: &[Token]) -> Result<(), Violation> {
    let mut stretch_start = 0;
    let mut words: Vec<&str> = Vec::new();
    let ends = tokens.iter().map(Some).chain(std::iter::once(None));
    for token in ends {
        let operator = match token {
            Some(Token::Word(word)) => {
                words.push(&word.text);
                continue;
            }
            Some(Token::Connector { span, .. } | Token::Redirect { span, .. }) => span.clone(),
            None => command.len()..command.len(),
        };
        let split = shell_words::split(&command[stretch_start..operator.start])
            .map_err(|_| Violation::Unparseable)?;
        if split.len() != words.len() || split.iter().zip(&words).any(|(a, b)| a != b) {
            return Err(Violation::Unparseable);
        }
        words.clear();
        stretch_start = operator.end;
    }
    Ok(())
}

fn operator(operator: Operator) -> Violation {
    Violation::Operator { operator }
}

/// 1-based character position of byte `at` in `command`, for messages.
fn position(command: &str, at: usize) -> usize {
    command[..at].chars().count() + 1
}

fn single_quoted(
    input: &mut Input<'_>,
    word: &mut WordBuilder,
    command: &str,
    at: usize,
) -> Result<(), Violation> {
    word.started = true;
    word.quoted = true;
    loop {
        match input.next() {
            None => {
                return Err(Violation::UnbalancedQuote {
                    quote: Quote::Single,
                    position: position(command, at),
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
    command: &str,
    at: usize,
) -> Result<(), Violation> {
    let unbalanced = || Violation::UnbalancedQuote {
        quote: Quote::Double,
        position: position(command, at),
    };
    word.started = true;
    word.quoted = true;
    loop {
        match input.next() {
            None => return Err(unbalanced()),
            Some((_, '"')) => return Ok(()),
            Some((_, '\\')) => match input.next() {
                None => return Err(unbalanced()),
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
            word.expanded(&inner, in_double_quotes);
            word.push('{');
            inner.chars().for_each(|c| word.push(c));
            word.push('}');
            Ok(())
        }
        c if c.is_ascii_alphabetic() || c == '_' => {
            let mut name = String::new();
            while let Some(&(_, c)) = input.peek() {
                if !(c.is_ascii_alphanumeric() || c == '_') {
                    break;
                }
                name.push(c);
                word.push(c);
                input.next();
            }
            word.expanded(&name, in_double_quotes);
            Ok(())
        }
        c if is_special_parameter(c.encode_utf8(&mut [0; 4])) => {
            word.expanded(c.encode_utf8(&mut [0; 4]), in_double_quotes);
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

    /// The strict scan's words (every token is one).
    fn strict(command: &str) -> Result<Vec<Word>, Violation> {
        let tokens = scan(command, ShellSyntax::Strict)?;
        Ok(tokens
            .into_iter()
            .map(|token| match token {
                Token::Word(word) => word,
                other => panic!("strict scan returned {other:?}"),
            })
            .collect())
    }

    fn texts(command: &str) -> Vec<String> {
        strict(command)
            .unwrap()
            .into_iter()
            .map(|word| word.text)
            .collect()
    }

    fn refused(command: &str) -> Violation {
        strict(command).expect_err(command)
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
            assert!(strict(quoted).is_ok(), "{quoted}");
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
        assert!(strict("echo '$(id)' '`id`' \\$\\(id\\)").is_ok());
    }

    #[test]
    fn only_plain_variables_expand() {
        let words = strict(r#"echo $HOME "${USER}" $1 $$ cost$ "$'x" '$(x)'"#).unwrap();
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
        assert!(strict("grep -rn '#include' a#b").is_ok());
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
            assert!(strict(anchored).is_ok(), "{anchored}");
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
        let words = strict(r#"ls ./*.rs \*.rs $HOME "$HOME" ~/x"#).unwrap();
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
            assert!(strict(command).is_ok(), "{command}");
        }
    }

    fn compound(command: &str) -> Result<Vec<Token>, Violation> {
        scan(command, ShellSyntax::Compound)
    }

    fn word(text: &str) -> Token {
        Token::Word(Word {
            text: text.to_owned(),
            literal: true,
            splits: false,
            variables: Vec::new(),
        })
    }

    #[test]
    fn compound_operators_become_tokens_with_their_place() {
        let tokens = compound("make 2>&1 | tee a.log&&ls>x;").unwrap();
        let expected = [
            word("make"),
            Token::Redirect {
                fd: Some(2),
                kind: RedirectKind::DuplicateOutput,
                span: 5..8,
            },
            word("1"),
            Token::Connector {
                connector: Connector::Pipe,
                span: 10..11,
            },
            word("tee"),
            word("a.log"),
            Token::Connector {
                connector: Connector::And,
                span: 21..23,
            },
            word("ls"),
            Token::Redirect {
                fd: None,
                kind: RedirectKind::Output,
                span: 25..26,
            },
            word("x"),
            Token::Connector {
                connector: Connector::Semicolon,
                span: 27..28,
            },
        ];
        assert_eq!(tokens, expected);
        words_agree("make 2>&1 | tee a.log&&ls>x;", &tokens).unwrap();
    }

    #[test]
    fn only_a_lone_unquoted_digit_is_a_descriptor() {
        let fd = |command: &str| {
            compound(command)
                .unwrap()
                .into_iter()
                .find_map(|token| match token {
                    Token::Redirect { fd, .. } => Some(fd),
                    Token::Word(_) | Token::Connector { .. } => None,
                })
        };
        assert_eq!(fd("ls 2>x"), Some(Some(2)));
        assert_eq!(fd("ls 2 >x"), Some(None));
        assert_eq!(fd("ls '2'>x"), Some(None));
        assert_eq!(fd("ls \\2>x"), Some(None));
        assert_eq!(fd("ls a2>x"), Some(None));
        for (command, problem) in [
            ("ls 10>x", RedirectionProblem::LongDescriptor),
            ("ls {fd}>x", RedirectionProblem::NamedDescriptor),
        ] {
            assert!(
                matches!(
                    compound(command),
                    Err(Violation::UnsupportedRedirection { problem: found, .. }) if found == problem
                ),
                "{command}"
            );
        }
    }

    #[test]
    fn compound_refuses_what_bash_and_dash_read_differently() {
        let cases = [
            ("a &", Operator::Background),
            ("a & b", Operator::Background),
            ("a &> f", Operator::RedirectBoth),
            ("a |& b", Operator::PipeStderr),
            ("a >| f", Operator::Clobber),
            ("a <> f", Operator::ReadWrite),
            ("a <(b)", Operator::ProcessSubstitution),
            ("a >(b)", Operator::ProcessSubstitution),
            ("a << EOF", Operator::HereDoc),
            ("a <<< x", Operator::HereDoc),
            ("(a)", Operator::Parenthesis),
            ("a; (b)", Operator::Parenthesis),
        ];
        for (command, expected) in cases {
            assert_eq!(
                compound(command),
                Err(Violation::Operator { operator: expected }),
                "{command}"
            );
        }
        assert_eq!(compound("a;\nb"), Err(Violation::LineBreak));
        assert_eq!(compound("a; #b"), Err(Violation::Comment));
    }

    #[test]
    fn every_stretch_between_operators_must_split_alike() {
        let tokens = compound("echo 'a|b' | tr a b").unwrap();
        assert!(words_agree("echo 'a|b' | tr a b", &tokens).is_ok());
        // A word list that does not match the line is a disagreement.
        let mut tokens = tokens;
        tokens[1] = word("x");
        assert_eq!(
            words_agree("echo 'a|b' | tr a b", &tokens),
            Err(Violation::Unparseable)
        );
    }
}
