//! Drawing `TuiUiState` with ratatui: the transcript (top), an approval
//! panel when a tool call waits for y/n (the tool, its safety tier and its
//! complete arguments, scrollable), the input box, and the status bar
//! (bottom). Everything is laid out from the frame's current size, so a
//! resize only needs a redraw.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use unicode_width::UnicodeWidthChar;

use crate::state::{ApprovalPrompt, ConnectionView, Entry, ToolStatus, TuiUiState};

/// The input box never grows past this many text rows.
const MAX_INPUT_ROWS: u16 = 8;

/// Draws the whole screen.
pub fn render(state: &TuiUiState, frame: &mut Frame<'_>) {
    let area = frame.area();
    let inner_width = area.width.saturating_sub(2).max(1);
    let width = usize::from(inner_width);
    let (cursor_row, _) = input_cursor(state.input.text(), state.input.cursor(), width);
    let input_rows = wrap_input(state.input.text(), width)
        .len()
        .max(cursor_row + 1)
        .clamp(1, usize::from(MAX_INPUT_ROWS));
    // `input_rows` is at most MAX_INPUT_ROWS, so it fits in a u16.
    let input_height = u16::try_from(input_rows).unwrap_or(MAX_INPUT_ROWS) + 2;
    let approval_lines = state
        .pending_approval
        .as_ref()
        .map_or(0, |prompt| wrap_words(&prompt.arguments, width).len());
    let approval_height = approval_panel_height(approval_lines, area.height, input_height);
    let [transcript_area, approval_area, input_area, status_area] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(approval_height),
        Constraint::Length(input_height),
        Constraint::Length(1),
    ])
    .areas(area);

    render_transcript(state, frame, transcript_area);
    if let Some(prompt) = &state.pending_approval {
        render_approval(prompt, frame, approval_area);
    }
    render_input(state, frame, input_area);
    frame.render_widget(
        Paragraph::new(status_line(state, usize::from(status_area.width))),
        status_area,
    );
}

/// Argument rows the approval panel shows at least (when the screen has
/// them): a PageDown (`APPROVAL_PAGE_LINES`) never skips a line.
pub const APPROVAL_MIN_ROWS: u16 = 5;

/// The approval panel's rows: the wrapped arguments plus its two borders,
/// at most half of what the transcript and panel share but at least
/// `APPROVAL_MIN_ROWS` of arguments (and 0 without a prompt).
fn approval_panel_height(lines: usize, screen: u16, input_height: u16) -> u16 {
    if lines == 0 {
        return 0;
    }
    let shared = screen.saturating_sub(input_height + 1);
    let wanted = u16::try_from(lines + 2).unwrap_or(u16::MAX);
    let most = (shared / 2)
        .max(APPROVAL_MIN_ROWS + 2)
        .min(shared.saturating_sub(1));
    wanted.min(most.max(3))
}

/// The tool, its safety tier and every line of its arguments; Up/Down and
/// PageUp/PageDown scroll when they do not fit.
fn render_approval(prompt: &ApprovalPrompt, frame: &mut Frame<'_>, area: Rect) {
    let title = format!(
        " allow {} ({})? [y]es / [n]o ",
        prompt.tool, prompt.safety_tier
    );
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(Style::new().fg(Color::Yellow))
        .title(truncate(&title, usize::from(area.width.saturating_sub(2))));
    let inner = block.inner(area);
    let lines = wrap_words(&prompt.arguments, usize::from(inner.width.max(1)));
    let visible = usize::from(inner.height);
    let max_scroll = lines.len().saturating_sub(visible);
    let scroll = prompt.scroll.min(max_scroll);
    let block = if max_scroll > 0 {
        block.title_bottom(format!(
            " lines {}-{} of {} (Up/Down scroll) ",
            scroll + 1,
            (scroll + visible).min(lines.len()),
            lines.len()
        ))
    } else {
        block
    };
    let text: Vec<Line<'static>> = lines
        .into_iter()
        .skip(scroll)
        .take(visible)
        .map(Line::from)
        .collect();
    frame.render_widget(Paragraph::new(text).block(block), area);
}

fn render_transcript(state: &TuiUiState, frame: &mut Frame<'_>, area: Rect) {
    let lines = transcript_lines(state, usize::from(area.width.max(1)));
    let height = usize::from(area.height);
    let max_scroll = lines.len().saturating_sub(height);
    let scroll = state.scroll_back.min(max_scroll);
    let end = lines.len() - scroll;
    let start = end.saturating_sub(height);
    let visible: Vec<Line<'static>> = lines[start..end].to_vec();
    frame.render_widget(Paragraph::new(visible), area);
}

fn render_input(state: &TuiUiState, frame: &mut Frame<'_>, area: Rect) {
    let title = if state.pending_approval.is_some() {
        " answer the approval prompt: y / n "
    } else if state.busy() {
        " message (Ctrl+C cancels the turn) "
    } else {
        " message (Enter sends, Alt+Enter new line, /help) "
    };
    let block = Block::new()
        .borders(Borders::ALL)
        .title(truncate(title, usize::from(area.width.saturating_sub(2))));
    let inner = block.inner(area);
    let width = usize::from(inner.width.max(1));
    let rows = wrap_input(state.input.text(), width);
    let (cursor_row, cursor_col) = input_cursor(state.input.text(), state.input.cursor(), width);
    let visible_rows = usize::from(inner.height.max(1));
    let first = cursor_row.saturating_sub(visible_rows - 1);
    let text: Vec<Line<'static>> = rows
        .into_iter()
        .skip(first)
        .take(visible_rows)
        .map(Line::from)
        .collect();
    frame.render_widget(Paragraph::new(text).block(block), area);
    if state.pending_approval.is_none() && inner.width > 0 && inner.height > 0 {
        let x = inner.x
            + u16::try_from(cursor_col)
                .unwrap_or(inner.width - 1)
                .min(inner.width - 1);
        let y = inner.y
            + u16::try_from(cursor_row - first)
                .unwrap_or(0)
                .min(inner.height - 1);
        frame.set_cursor_position(Position::new(x, y));
    }
}

/// The status bar: connection, session, model, tier, last turn's usage and
/// cost, degraded reasons; cut to `width` columns.
pub fn status_line(state: &TuiUiState, width: usize) -> Line<'static> {
    let (connection, color) = match &state.connection {
        ConnectionView::Connecting => ("connecting".to_owned(), Color::Yellow),
        ConnectionView::Connected => ("connected".to_owned(), Color::Green),
        ConnectionView::Reconnecting { attempt, .. } => {
            (format!("reconnecting #{attempt}"), Color::Yellow)
        }
        ConnectionView::Closed { .. } => ("disconnected".to_owned(), Color::Red),
    };
    let mut parts = vec![format!("● {connection}")];
    if let Some(session) = &state.session_id {
        parts.push(format!("session {session}"));
    }
    if let Some(model) = &state.model {
        parts.push(model.to_string());
    }
    if let Some(tier) = state.tier {
        parts.push(format!("tier {tier}"));
    }
    if let Some(turn) = &state.active_turn {
        parts.push(
            if turn.cancelling {
                "cancelling"
            } else {
                "working"
            }
            .to_owned(),
        );
    } else if state.queued_turns > 0 {
        parts.push("queued".to_owned());
    }
    if let Some(usage) = &state.last_usage {
        let cached = match usage.cached_input_tokens {
            0 => String::new(),
            read => format!(" ({read} cached)"),
        };
        parts.push(format!(
            "{} tok{cached} ${:.4}",
            usage.total_tokens, usage.cost_usd
        ));
    }
    let mut text = parts.join(" │ ");
    let mut style = Style::new().fg(Color::Black).bg(color);
    if !state.degraded_reasons.is_empty() {
        text.push_str(" │ degraded: ");
        text.push_str(&state.degraded_reasons.join("; "));
        if state.is_connected() {
            style = style.bg(Color::Yellow);
        }
    }
    let text = truncate(&text, width);
    let padding = width.saturating_sub(display_width(&text));
    Line::from(Span::styled(
        format!("{text}{}", " ".repeat(padding)),
        style,
    ))
}

/// The transcript as wrapped, styled lines.
pub fn transcript_lines(state: &TuiUiState, width: usize) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    for entry in &state.transcript {
        let (text, style) = match entry {
            Entry::User(text) => (
                format!("you: {text}"),
                Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            ),
            Entry::Assistant { text, streaming } => (
                format!("agent: {text}{}", if *streaming { "▌" } else { "" }),
                Style::new(),
            ),
            Entry::Reasoning { text, streaming } => (
                if state.show_reasoning {
                    format!("thinking: {text}{}", if *streaming { "▌" } else { "" })
                } else {
                    format!("thinking… ({} chars)", text.chars().count())
                },
                Style::new()
                    .fg(Color::DarkGray)
                    .add_modifier(Modifier::DIM | Modifier::ITALIC),
            ),
            Entry::Tool {
                name,
                summary,
                status,
                ..
            } => {
                let (mark, color) = match status {
                    ToolStatus::Running => ("…", Color::Yellow),
                    ToolStatus::Succeeded => ("ok", Color::Green),
                    ToolStatus::Failed => ("failed", Color::Red),
                };
                (
                    format!("  tool {name} {summary} [{mark}]"),
                    Style::new().fg(color),
                )
            }
            Entry::Notice(text) => (format!("· {text}"), Style::new().fg(Color::DarkGray)),
            Entry::Error(text) => (format!("! {text}"), Style::new().fg(Color::Red)),
        };
        lines.extend(
            wrap_words(&text, width)
                .into_iter()
                .map(|line| Line::from(Span::styled(line, style))),
        );
    }
    lines
}

/// Word-wraps `text` to `width` columns; `\n` always breaks; words longer
/// than a line are cut.
pub fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        let mut line_width = 0;
        for word in paragraph.split_inclusive(' ') {
            let word_width = display_width(word);
            let trimmed_width = display_width(word.trim_end_matches(' '));
            if line_width + trimmed_width > width && line_width > 0 {
                out.push(line.trim_end_matches(' ').to_owned());
                line.clear();
                line_width = 0;
            }
            if word_width > width {
                for c in word.chars() {
                    let w = char_width(c);
                    if line_width + w > width && line_width > 0 {
                        out.push(std::mem::take(&mut line));
                        line_width = 0;
                    }
                    line.push(c);
                    line_width += w;
                }
            } else {
                line.push_str(word);
                line_width += word_width;
            }
        }
        out.push(line.trim_end_matches(' ').to_owned());
    }
    out
}

/// The input text cut into rows of `width` columns (no word wrapping, so
/// the cursor maps exactly).
fn wrap_input(text: &str, width: usize) -> Vec<String> {
    let mut rows = Vec::new();
    for line in text.split('\n') {
        let mut row = String::new();
        let mut row_width = 0;
        for c in line.chars() {
            let w = char_width(c);
            if row_width + w > width && row_width > 0 {
                rows.push(std::mem::take(&mut row));
                row_width = 0;
            }
            row.push(c);
            row_width += w;
        }
        rows.push(row);
    }
    rows
}

/// Row and column of byte offset `cursor` in `wrap_input(text, width)`.
fn input_cursor(text: &str, cursor: usize, width: usize) -> (usize, usize) {
    let (mut row, mut col) = (0, 0);
    for c in text[..cursor].chars() {
        if c == '\n' {
            row += 1;
            col = 0;
            continue;
        }
        let w = char_width(c);
        if col + w > width && col > 0 {
            row += 1;
            col = 0;
        }
        col += w;
    }
    if col >= width {
        row += 1;
        col = 0;
    }
    (row, col)
}

fn char_width(c: char) -> usize {
    c.width().unwrap_or(0)
}

fn display_width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

/// `text` cut to `width` columns, with `…` when cut.
fn truncate(text: &str, width: usize) -> String {
    if display_width(text) <= width {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = char_width(c);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    if width > 0 {
        out.push('…');
    }
    out
}
