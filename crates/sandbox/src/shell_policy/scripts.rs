//! Inspection of the two mini-languages whose program text is an argument:
//! awk programs and sed scripts.
//!
//! Both fail closed. Where implementations disagree (whether `/` inside
//! `[…]` ends a regular expression), a finding under either reading counts;
//! where a character's meaning depends on the awk grammar (`/` as division
//! or regular expression after `)`), the rest of the program is scanned
//! without skipping strings, regular expressions or comments.

/// Whether an awk program may run a command: `system(`, a pipe (`|` other
/// than `||`: `print | "cmd"`, `"cmd" | getline`, `|&`), or `@` (gawk's
/// `@load`, `@include` and indirect calls such as `@f()` with f = "system").
pub(super) fn awk_runs_commands(program: &str) -> bool {
    // A backslash-newline joins lines; joining first can only make a
    // forbidden word visible.
    let text = program.replace("\\\n", "");
    let calls_system = text
        .match_indices("system")
        .any(|(at, _)| text[at + "system".len()..].trim_start().starts_with('('));
    calls_system || text.contains('@') || awk_has_pipe(&text)
}

/// What the previous token lets a `/` be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Before {
    /// An operand is expected: `/` starts a regular expression.
    Operand,
    /// An operand just ended: `/` divides.
    Operator,
    /// Depends on the grammar (`if (x) /re/` versus `(x) / 2`, `a++ / 2`).
    Unknown,
}

fn awk_has_pipe(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let mut at = 0;
    let mut before = Before::Operand;
    while let Some(&c) = chars.get(at) {
        let next = chars.get(at + 1).copied();
        match c {
            '|' if next == Some('|') => {
                at += 2;
                before = Before::Operand;
                continue;
            }
            '|' => return true,
            '"' => {
                at = string_end(&chars, at);
                before = Before::Operator;
                continue;
            }
            '#' => {
                while chars.get(at).is_some_and(|&c| c != '\n') {
                    at += 1;
                }
                continue;
            }
            '/' => match before {
                Before::Operator => before = Before::Operand,
                Before::Operand => match regex_end(&chars, at) {
                    Some(end) => {
                        at = end;
                        before = Before::Operator;
                        continue;
                    }
                    None => return unreliable_has_pipe(&chars[at..]),
                },
                Before::Unknown => return unreliable_has_pipe(&chars[at..]),
            },
            c if c.is_alphanumeric() || c == '_' => {
                let start = at;
                while chars
                    .get(at)
                    .is_some_and(|&c| c.is_alphanumeric() || c == '_' || c == '.')
                {
                    at += 1;
                }
                before = classify(&chars[start..at].iter().collect::<String>());
                continue;
            }
            '\n' => before = Before::Operand,
            ' ' | '\t' => {}
            '{' | '}' | ';' | ',' | '(' | '!' | '~' | '&' | '=' | '<' | '>' | '*' | '%' | '^'
            | '?' | ':' | '$' => before = Before::Operand,
            ']' => before = Before::Operator,
            _ => before = Before::Unknown,
        }
        at += 1;
    }
    false
}

/// After an identifier or number.
fn classify(word: &str) -> Before {
    match word {
        // Keywords followed by an expression: a `/` can only start a regex.
        "print" | "printf" | "return" | "exit" | "case" | "do" | "else" => Before::Operand,
        "getline" | "in" => Before::Unknown,
        _ => Before::Operator,
    }
}

/// Once the lexer cannot tell what a `/` is, any string, regex or comment
/// boundary after it may be misread, so every single `|` counts.
fn unreliable_has_pipe(chars: &[char]) -> bool {
    let mut at = 0;
    while let Some(&c) = chars.get(at) {
        if c == '|' {
            if chars.get(at + 1) != Some(&'|') {
                return true;
            }
            at += 1;
        }
        at += 1;
    }
    false
}

/// Index after the string opened at `start`; an unterminated string ends
/// at the end of the line (awk rejects it).
fn string_end(chars: &[char], start: usize) -> usize {
    let mut at = start + 1;
    while let Some(&c) = chars.get(at) {
        match c {
            '\\' => at += 2,
            '"' => return at + 1,
            '\n' => return at,
            _ => at += 1,
        }
    }
    chars.len()
}

/// Index after the regular expression opened at `start`, if gawk (which
/// skips `/` inside brackets) and awks that do not agree on where it ends.
fn regex_end(chars: &[char], start: usize) -> Option<usize> {
    let plain = regex_close(chars, start, false)?;
    let bracketed = regex_close(chars, start, true)?;
    (plain == bracketed).then_some(plain + 1)
}

fn regex_close(chars: &[char], start: usize, brackets: bool) -> Option<usize> {
    let mut at = start + 1;
    let mut in_bracket = false;
    loop {
        match *chars.get(at)? {
            '\n' => return None,
            '\\' => at += 1,
            '/' if !in_bracket => return Some(at),
            '[' if brackets && !in_bracket => {
                in_bracket = true;
                // `[]…]` and `[^]…]`: a leading `]` is literal.
                at += usize::from(chars.get(at + 1) == Some(&'^'));
                at += usize::from(chars.get(at + 1) == Some(&']'));
            }
            '[' if in_bracket && matches!(chars.get(at + 1), Some(':' | '.' | '=')) => {
                let kind = chars[at + 1];
                at += 2;
                while !(chars.get(at) == Some(&kind) && chars.get(at + 1) == Some(&']')) {
                    if matches!(chars.get(at), None | Some('\n')) {
                        return None;
                    }
                    at += 1;
                }
                at += 1;
            }
            ']' if in_bracket => in_bracket = false,
            _ => {}
        }
        at += 1;
    }
}

/// Why a sed script is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SedProblem {
    /// The `e` command or the `s///e` flag.
    Execute,
    /// Not valid GNU sed, so the policy cannot rule `e` out.
    Unparseable,
}

/// Checks a sed script for the `e` command and `s///e` flag, following
/// GNU sed 4.9's `compile.c`, whose `[…]` handling in regular expressions
/// skips the delimiter. A second reading without that rule (other seds)
/// only adds findings of `e`: a script it cannot parse is one such a sed
/// refuses to run.
pub(super) fn sed_script(script: &str) -> Result<(), SedProblem> {
    let chars: Vec<char> = script.chars().collect();
    let gnu = SedParser {
        chars: &chars,
        at: 0,
        brackets: true,
    }
    .run();
    let plain = SedParser {
        chars: &chars,
        at: 0,
        brackets: false,
    }
    .run();
    match plain {
        Err(SedProblem::Execute) => Err(SedProblem::Execute),
        Ok(()) | Err(SedProblem::Unparseable) => gnu,
    }
}

#[derive(Debug)]
struct SedParser<'a> {
    chars: &'a [char],
    at: usize,
    brackets: bool,
}

impl SedParser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn next(&mut self) -> Result<char, SedProblem> {
        let c = self.peek().ok_or(SedProblem::Unparseable)?;
        self.at += 1;
        Ok(c)
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.at += 1;
        }
    }

    fn skip_digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
    }

    /// To the end of the line (file names, comments).
    fn skip_line(&mut self) {
        while let Some(c) = self.peek() {
            self.at += 1;
            if c == '\n' {
                return;
            }
        }
    }

    fn run(mut self) -> Result<(), SedProblem> {
        loop {
            while self.peek().is_some_and(|c| c == ';' || c.is_whitespace()) {
                self.at += 1;
            }
            if self.peek().is_none() {
                return Ok(());
            }
            let mut command = self.next()?;
            if self.address(command)? {
                self.skip_blanks();
                if self.peek() == Some(',') {
                    self.at += 1;
                    self.skip_blanks();
                    let second = self.next()?;
                    if !self.address(second)? {
                        return Err(SedProblem::Unparseable);
                    }
                }
                self.skip_blanks();
                command = self.next()?;
            }
            if command == '!' {
                self.skip_blanks();
                command = self.next()?;
            }
            self.command(command)?;
        }
    }

    /// Reads an address starting with `c`; false if `c` starts none.
    fn address(&mut self, c: char) -> Result<bool, SedProblem> {
        match c {
            '/' | '\\' => {
                let delimiter = if c == '\\' { self.next()? } else { c };
                self.delimited(delimiter, true)?;
                loop {
                    self.skip_blanks();
                    if !matches!(self.peek(), Some('I' | 'M')) {
                        return Ok(true);
                    }
                    self.at += 1;
                }
            }
            '0'..='9' => {
                self.skip_digits();
                self.skip_blanks();
                if self.peek() == Some('~') {
                    self.at += 1;
                    self.skip_blanks();
                    self.skip_digits();
                }
                Ok(true)
            }
            '+' | '~' => {
                self.skip_blanks();
                self.skip_digits();
                Ok(true)
            }
            '$' => Ok(true),
            _ => Ok(false),
        }
    }

    fn command(&mut self, command: char) -> Result<(), SedProblem> {
        match command {
            'e' => Err(SedProblem::Execute),
            '#' | 'r' | 'R' | 'w' | 'W' => {
                self.skip_line();
                Ok(())
            }
            '{' => Ok(()),
            '}' | '=' | 'd' | 'D' | 'F' | 'g' | 'G' | 'h' | 'H' | 'n' | 'N' | 'p' | 'P' | 'x'
            | 'z' => self.end_of_command(),
            'q' | 'Q' | 'l' | 'L' => {
                self.skip_blanks();
                self.skip_digits();
                self.end_of_command()
            }
            ':' | 'b' | 't' | 'T' | 'v' => {
                self.skip_blanks();
                while self
                    .peek()
                    .is_some_and(|c| !matches!(c, '\n' | ' ' | '\t' | ';' | '}' | '#'))
                {
                    self.at += 1;
                }
                Ok(())
            }
            'a' | 'i' | 'c' => {
                self.text();
                Ok(())
            }
            's' => self.substitute(),
            'y' => {
                let delimiter = self.next()?;
                self.delimited(delimiter, false)?;
                self.delimited(delimiter, false)?;
                self.end_of_command()
            }
            _ => Err(SedProblem::Unparseable),
        }
    }

    /// Text of `a`, `i`, `c`: to an unescaped newline (`a\` then the text
    /// on the next line, or GNU's one-line `a text`).
    fn text(&mut self) {
        self.skip_blanks();
        if self.peek() == Some('\\') {
            self.at += 2;
        }
        while let Some(c) = self.peek() {
            self.at += if c == '\\' { 2 } else { 1 };
            if c == '\n' {
                return;
            }
        }
    }

    fn substitute(&mut self) -> Result<(), SedProblem> {
        let delimiter = self.next()?;
        if delimiter == '\n' || delimiter == '\\' {
            return Err(SedProblem::Unparseable);
        }
        self.delimited(delimiter, true)?;
        self.delimited(delimiter, false)?;
        loop {
            self.skip_blanks();
            match self.peek() {
                None | Some('}' | '#') => return Ok(()),
                Some('\n' | ';') => {
                    self.at += 1;
                    return Ok(());
                }
                Some('e') => return Err(SedProblem::Execute),
                // The rest of the line is a file name.
                Some('w') => {
                    self.skip_line();
                    return Ok(());
                }
                Some('g' | 'p' | 'i' | 'I' | 'm' | 'M' | '0'..='9') => self.at += 1,
                Some(_) => return Err(SedProblem::Unparseable),
            }
        }
    }

    /// After a command: blanks, then `;`, a newline, `}`, `#` or the end.
    fn end_of_command(&mut self) -> Result<(), SedProblem> {
        self.skip_blanks();
        match self.peek() {
            None | Some('}' | '#') => Ok(()),
            Some('\n' | ';') => {
                self.at += 1;
                Ok(())
            }
            Some(_) => Err(SedProblem::Unparseable),
        }
    }

    /// Up to and including the closing `delimiter` (GNU `match_slash`): a
    /// backslash escapes anything, an unescaped newline is an error.
    fn delimited(&mut self, delimiter: char, regex: bool) -> Result<(), SedProblem> {
        loop {
            match self.next()? {
                '\n' => return Err(SedProblem::Unparseable),
                c if c == delimiter => return Ok(()),
                '\\' => {
                    self.next()?;
                }
                '[' if regex && self.brackets => self.bracket()?,
                _ => {}
            }
        }
    }

    /// After `[` in a regular expression, through the closing `]` (GNU
    /// `snarf_char_class`, including `[:class:]`, `[.x.]`, `[=x=]`).
    fn bracket(&mut self) -> Result<(), SedProblem> {
        let mut c = self.next()?;
        if c == '^' {
            c = self.next()?;
        }
        if c == ']' {
            c = self.next()?;
        }
        // 0: plain, 1: after `[`, 2: inside `[:`, 3: after the closing `:`.
        let mut state = 0;
        let mut kind = ' ';
        loop {
            match c {
                '\n' => return Err(SedProblem::Unparseable),
                '.' | ':' | '=' if state == 1 => {
                    kind = c;
                    state = 2;
                }
                _ if state == 2 && c == kind => state = 3,
                '[' => state = if state == 0 { 1 } else { state },
                ']' if state <= 1 => return Ok(()),
                ']' if state == 3 => state = 0,
                _ if state != 2 => state &= !1,
                _ => {}
            }
            c = self.next()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awk_programs_that_only_process_text() {
        for program in [
            "{print $1}",
            "/a|b/ {print}",
            "$1 ~ /x|y/ { n++ } END { print n }",
            "BEGIN { FS = \"|\" } { print $2 }",
            "{ print $1 \"|\" $2 }",
            "{ x = a / b; print x > \"out.txt\" }",
            "{ print (a || b) }",
            "{ gsub(/a|b/, \"x\"); split($0, parts, /\\|/); print }",
            "{ n++ } /x|y/ { print }",
            "# a \"quoted\" comment | here\n{ print }",
            "{ print length($0) > 72 }",
        ] {
            assert!(!awk_runs_commands(program), "{program}");
        }
    }

    #[test]
    fn awk_programs_that_run_commands() {
        for program in [
            "BEGIN { system(\"id\") }",
            "BEGIN { system (\"id\") }",
            "BEGIN { sys\\\ntem(\"id\") }",
            "{ print | \"sh\" }",
            "{ print $0 |\"sort\" }",
            "BEGIN { \"id\" | getline x }",
            "BEGIN { print \"x\" |& \"cat\" }",
            "BEGIN { f = \"system\"; @f(\"id\") }",
            "@load \"filefuncs\"",
            // `)` leaves `/` ambiguous: the rest is scanned without skipping.
            "{ if (x) /\"/; print | \"sh\" }",
            "{ a++ / 2; print | \"sh\" }",
            // A regex that gawk and other awks would end differently (this
            // also refuses the harmless `/[/|]/`).
            "/[/]\"/ ; print | \"sh\" #\"/",
        ] {
            assert!(awk_runs_commands(program), "{program}");
        }
    }

    #[test]
    fn sed_scripts_without_execution() {
        for script in [
            "1,5p",
            "s/foo/bar/g",
            "s|a|b|gI;s/x/y/2",
            "/start/,/end/d",
            "$ a\\\nappended e text",
            "a one-line text; e not a command",
            "0~2 p",
            ":a;N;$!ba;s/\\n/ /g",
            "s/[/]/X/",
            "s/x/y/w out.txt",
            "1w out.txt",
            "y/abc/xyz/",
            "/x/I { p; d }",
            "# comment e\np",
            "s/[[:alpha:]]/e/",
        ] {
            assert_eq!(sed_script(script), Ok(()), "{script}");
        }
    }

    #[test]
    fn sed_scripts_that_execute() {
        for script in [
            "e id",
            "1e id",
            "s/x/y/e",
            "s/x/y/ge",
            "s/x/y/ g e",
            "/x/!e",
            "p;e",
            "{e\n}",
        ] {
            assert_eq!(sed_script(script), Err(SedProblem::Execute), "{script}");
        }
    }

    #[test]
    fn sed_scripts_that_cannot_be_checked() {
        for script in ["s/x/y", "s/x/y/k", "pe", "s/[/x/", "1,", "X"] {
            assert_eq!(sed_script(script), Err(SedProblem::Unparseable), "{script}");
        }
    }
}
