//! The prompt: a multi-line text buffer with a cursor, and the history of
//! submitted prompts.

/// Text being typed. `cursor` is a byte offset that always sits on a
/// `char` boundary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputBuffer {
    text: String,
    cursor: usize,
}

impl InputBuffer {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Replaces the text and puts the cursor at its end.
    pub fn set(&mut self, text: impl Into<String>) {
        self.text = text.into();
        self.cursor = self.text.len();
    }

    /// Empties the buffer and returns what it held.
    pub fn take(&mut self) -> String {
        self.cursor = 0;
        std::mem::take(&mut self.text)
    }

    pub fn insert_char(&mut self, c: char) {
        self.text.insert(self.cursor, c);
        self.cursor += c.len_utf8();
    }

    /// Inserts pasted text; `\r\n` and `\r` become `\n`.
    pub fn insert_str(&mut self, text: &str) {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        self.text.insert_str(self.cursor, &text);
        self.cursor += text.len();
    }

    pub fn backspace(&mut self) {
        if let Some(c) = self.text[..self.cursor].chars().next_back() {
            self.cursor -= c.len_utf8();
            self.text.remove(self.cursor);
        }
    }

    pub fn delete(&mut self) {
        if self.cursor < self.text.len() {
            self.text.remove(self.cursor);
        }
    }

    pub fn left(&mut self) {
        if let Some(c) = self.text[..self.cursor].chars().next_back() {
            self.cursor -= c.len_utf8();
        }
    }

    pub fn right(&mut self) {
        if let Some(c) = self.text[self.cursor..].chars().next() {
            self.cursor += c.len_utf8();
        }
    }

    /// Start of the current line.
    pub fn home(&mut self) {
        self.cursor = self.line_start();
    }

    /// End of the current line.
    pub fn end(&mut self) {
        self.cursor = self.text[self.cursor..]
            .find('\n')
            .map_or(self.text.len(), |offset| self.cursor + offset);
    }

    /// Whether the cursor is on the first line.
    pub fn on_first_line(&self) -> bool {
        !self.text[..self.cursor].contains('\n')
    }

    /// Whether the cursor is on the last line.
    pub fn on_last_line(&self) -> bool {
        !self.text[self.cursor..].contains('\n')
    }

    /// Moves to the previous line, keeping the column where possible.
    pub fn up(&mut self) {
        if self.on_first_line() {
            return;
        }
        let column = self.column();
        let start = self.line_start();
        let previous_start = self.text[..start - 1].rfind('\n').map_or(0, |i| i + 1);
        self.cursor = Self::advance(&self.text, previous_start, start - 1, column);
    }

    /// Moves to the next line, keeping the column where possible.
    pub fn down(&mut self) {
        let Some(offset) = self.text[self.cursor..].find('\n') else {
            return;
        };
        let column = self.column();
        let next_start = self.cursor + offset + 1;
        let next_end = self.text[next_start..]
            .find('\n')
            .map_or(self.text.len(), |offset| next_start + offset);
        self.cursor = Self::advance(&self.text, next_start, next_end, column);
    }

    fn line_start(&self) -> usize {
        self.text[..self.cursor].rfind('\n').map_or(0, |i| i + 1)
    }

    /// The cursor's column in characters.
    fn column(&self) -> usize {
        self.text[self.line_start()..self.cursor].chars().count()
    }

    /// The byte offset `column` characters after `start`, not past `end`.
    fn advance(text: &str, start: usize, end: usize, column: usize) -> usize {
        text[start..end]
            .char_indices()
            .nth(column)
            .map_or(end, |(offset, _)| start + offset)
    }
}

/// Submitted prompts, oldest first, browsed with Up/Down. The text being
/// typed when browsing started is kept and comes back at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputHistory {
    entries: Vec<String>,
    position: Option<usize>,
    draft: String,
}

impl InputHistory {
    /// The most entries kept.
    pub const LIMIT: usize = 500;

    pub fn push(&mut self, entry: &str) {
        self.position = None;
        if entry.trim().is_empty() || self.entries.last().is_some_and(|last| last == entry) {
            return;
        }
        if self.entries.len() == Self::LIMIT {
            self.entries.remove(0);
        }
        self.entries.push(entry.to_owned());
    }

    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    /// The entry before the one shown (or the newest), saving `current` as
    /// the draft when browsing starts. `None` at the oldest entry.
    pub fn older(&mut self, current: &str) -> Option<&str> {
        let position = match self.position {
            None if self.entries.is_empty() => return None,
            None => {
                self.draft = current.to_owned();
                self.entries.len() - 1
            }
            Some(0) => return None,
            Some(position) => position - 1,
        };
        self.position = Some(position);
        self.entries.get(position).map(String::as_str)
    }

    /// The entry after the one shown, or the saved draft after the newest.
    /// `None` when not browsing.
    pub fn newer(&mut self) -> Option<&str> {
        let position = self.position?;
        if position + 1 < self.entries.len() {
            self.position = Some(position + 1);
            self.entries.get(position + 1).map(String::as_str)
        } else {
            self.position = None;
            Some(&self.draft)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editing_moves_over_whole_characters() {
        let mut input = InputBuffer::default();
        for c in "héllo".chars() {
            input.insert_char(c);
        }
        input.left();
        input.left();
        input.left();
        input.left();
        input.backspace();
        assert_eq!(input.text(), "éllo");
        input.delete();
        assert_eq!(input.text(), "llo");
        input.end();
        input.insert_str("\r\nsecond\rthird");
        assert_eq!(input.text(), "llo\nsecond\nthird");
        assert_eq!(input.take(), "llo\nsecond\nthird");
        assert!(input.is_empty());
        assert_eq!(input.cursor(), 0);
    }

    #[test]
    fn up_and_down_keep_the_column() {
        let mut input = InputBuffer::default();
        input.set("abcdef\nxy\nlonger line");
        assert!(input.on_last_line());
        input.home();
        input.right();
        input.right();
        input.right();
        input.up();
        // "xy" is shorter than column 3: the cursor goes to its end.
        assert_eq!(input.cursor(), "abcdef\nxy".len());
        input.up();
        assert_eq!(input.cursor(), 2);
        assert!(input.on_first_line());
        input.up();
        assert_eq!(input.cursor(), 2);
        input.down();
        input.down();
        assert_eq!(input.cursor(), "abcdef\nxy\nlo".len());
        input.end();
        assert_eq!(input.cursor(), input.text().len());
    }

    #[test]
    fn history_browses_and_returns_the_draft() {
        let mut history = InputHistory::default();
        assert_eq!(history.older("draft"), None);
        history.push("one");
        history.push("two");
        history.push("two");
        history.push("   ");
        assert_eq!(history.entries(), ["one", "two"]);
        assert_eq!(history.older("draft"), Some("two"));
        assert_eq!(history.older("ignored"), Some("one"));
        assert_eq!(history.older("ignored"), None);
        assert_eq!(history.newer(), Some("two"));
        assert_eq!(history.newer(), Some("draft"));
        assert_eq!(history.newer(), None);
    }
}
