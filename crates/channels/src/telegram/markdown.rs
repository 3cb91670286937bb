//! The model's Markdown as Telegram messages: `split` cuts a reply into
//! pieces under Telegram's size limit on paragraph and code-block
//! boundaries (a code block cut in the middle is closed and reopened), and
//! `to_html` renders one piece to Telegram's HTML formatting, the one
//! dialect where escaping is only `&`, `<`, `>` and `"`.
//!
//! Markdown is parsed by `pulldown-cmark`; the HTML is written here because
//! Telegram accepts only a handful of tags (b, i, s, code, pre, a,
//! blockquote) and no block structure, which no HTML renderer targets.

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

/// Length as Telegram counts it: UTF-16 code units.
pub fn units(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// `text` escaped for Telegram HTML (text and attribute values).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Links Telegram follows; any other `href` makes it refuse the message.
fn linkable(url: &str) -> bool {
    ["http://", "https://", "tg://", "mailto:"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
}

fn ensure_line_start(out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

fn end_block(out: &mut String) {
    let trimmed = out.trim_end_matches('\n').len();
    out.truncate(trimmed);
    if !out.is_empty() {
        out.push_str("\n\n");
    }
}

/// Renders Markdown as Telegram HTML. The visible text is never longer
/// than the Markdown source, so a piece from `split` stays under the limit.
pub fn to_html(markdown: &str) -> String {
    let mut out = String::new();
    // One entry per open list: the next item's number, or `None` for bullets.
    let mut lists: Vec<Option<u64>> = Vec::new();
    // One entry per open link or image: whether an `<a>` was opened.
    let mut links: Vec<bool> = Vec::new();
    for event in Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH) {
        match event {
            Event::Start(tag) => match tag {
                Tag::Heading { .. } => out.push_str("<b>"),
                Tag::BlockQuote(_) => out.push_str("<blockquote>"),
                Tag::CodeBlock(CodeBlockKind::Fenced(language)) if !language.is_empty() => {
                    let language = language.split_whitespace().next().unwrap_or_default();
                    out.push_str(&format!(
                        "<pre><code class=\"language-{}\">",
                        escape(language)
                    ));
                }
                Tag::CodeBlock(_) => out.push_str("<pre><code>"),
                Tag::List(start) => {
                    ensure_line_start(&mut out);
                    lists.push(start);
                }
                Tag::Item => {
                    ensure_line_start(&mut out);
                    out.push_str(&"  ".repeat(lists.len().saturating_sub(1)));
                    match lists.last_mut() {
                        Some(Some(number)) => {
                            out.push_str(&format!("{number}. "));
                            *number += 1;
                        }
                        Some(None) | None => out.push_str("• "),
                    }
                }
                Tag::Emphasis => out.push_str("<i>"),
                Tag::Strong => out.push_str("<b>"),
                Tag::Strikethrough => out.push_str("<s>"),
                Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                    let open = linkable(&dest_url);
                    if open {
                        out.push_str(&format!("<a href=\"{}\">", escape(&dest_url)));
                    }
                    links.push(open);
                }
                _ => {}
            },
            Event::End(tag) => match tag {
                TagEnd::Paragraph => {
                    if lists.is_empty() {
                        end_block(&mut out);
                    } else {
                        ensure_line_start(&mut out);
                    }
                }
                TagEnd::Heading(_) => {
                    out.push_str("</b>");
                    end_block(&mut out);
                }
                TagEnd::BlockQuote(_) => {
                    let trimmed = out.trim_end_matches('\n').len();
                    out.truncate(trimmed);
                    out.push_str("</blockquote>");
                    end_block(&mut out);
                }
                TagEnd::CodeBlock => {
                    if out.ends_with('\n') {
                        out.pop();
                    }
                    out.push_str("</code></pre>");
                    end_block(&mut out);
                }
                TagEnd::List(_) => {
                    lists.pop();
                    if lists.is_empty() {
                        end_block(&mut out);
                    }
                }
                TagEnd::Item => ensure_line_start(&mut out),
                TagEnd::Emphasis => out.push_str("</i>"),
                TagEnd::Strong => out.push_str("</b>"),
                TagEnd::Strikethrough => out.push_str("</s>"),
                TagEnd::Link | TagEnd::Image => {
                    let opened = links.pop() == Some(true);
                    out.push_str(if opened { "</a>" } else { "" });
                }
                _ => {}
            },
            Event::Text(text) | Event::Html(text) | Event::InlineHtml(text) => {
                out.push_str(&escape(&text));
            }
            Event::Code(code) => {
                out.push_str("<code>");
                out.push_str(&escape(&code));
                out.push_str("</code>");
            }
            Event::SoftBreak | Event::HardBreak => out.push('\n'),
            Event::Rule => {
                out.push_str("———");
                end_block(&mut out);
            }
            Event::TaskListMarker(done) => out.push_str(if done { "☑ " } else { "☐ " }),
            _ => {}
        }
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out
}

/// A block of the source: a paragraph or a fenced code block (with its
/// fence lines).
struct Block<'a> {
    lines: Vec<&'a str>,
    /// The opening fence (`` ``` `` or `~~~`, with any info string), for
    /// code blocks.
    fence: Option<&'a str>,
}

/// The fence a line opens or closes, if it is one.
fn fence_of(line: &str) -> Option<&str> {
    let trimmed = line.trim_start_matches(' ');
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    (trimmed.starts_with("```") || trimmed.starts_with("~~~")).then_some(trimmed)
}

fn closes(fence: &str, line: &str) -> bool {
    let marker = fence.chars().next().unwrap_or('`');
    let open_len = fence.chars().take_while(|c| *c == marker).count();
    fence_of(line).is_some_and(|candidate| {
        let len = candidate.chars().take_while(|c| *c == marker).count();
        len >= open_len && candidate[len..].trim().is_empty()
    })
}

fn blocks(text: &str) -> Vec<Block<'_>> {
    let mut blocks = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(fence) = fence_of(line) {
            if !current.is_empty() {
                blocks.push(Block {
                    lines: std::mem::take(&mut current),
                    fence: None,
                });
            }
            let mut code = vec![line];
            for inner in lines.by_ref() {
                code.push(inner);
                if closes(fence, inner) {
                    break;
                }
            }
            blocks.push(Block {
                lines: code,
                fence: Some(fence),
            });
        } else if line.trim().is_empty() {
            if !current.is_empty() {
                blocks.push(Block {
                    lines: std::mem::take(&mut current),
                    fence: None,
                });
            }
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        blocks.push(Block {
            lines: current,
            fence: None,
        });
    }
    blocks
}

/// Cuts `text` at whitespace (or anywhere, for one long word) into pieces
/// of at most `max` units.
fn cut_words(text: &str, max: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut current_units = 0;
    for word in text.split_inclusive(char::is_whitespace) {
        let word_units = units(word);
        if current_units + word_units > max && !current.is_empty() {
            pieces.push(std::mem::take(&mut current));
            current_units = 0;
        }
        if word_units > max {
            for c in word.chars() {
                if current_units + c.len_utf16() > max {
                    pieces.push(std::mem::take(&mut current));
                    current_units = 0;
                }
                current.push(c);
                current_units += c.len_utf16();
            }
        } else {
            current.push_str(word);
            current_units += word_units;
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// Packs lines into pieces of at most `max` units joined by newlines.
fn pack_lines<'a>(lines: impl IntoIterator<Item = &'a str>, max: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for line in lines {
        for part in cut_words(line, max.max(1)) {
            if current.is_empty() {
                current = part;
            } else if units(&current) + 1 + units(&part) <= max {
                current.push('\n');
                current.push_str(&part);
            } else {
                pieces.push(std::mem::replace(&mut current, part));
            }
        }
        if line.is_empty() && !current.is_empty() {
            current.push('\n');
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// A block as pieces of at most `max` units.
fn fit(block: &Block<'_>, max: usize) -> Vec<String> {
    let whole = block.lines.join("\n");
    if units(&whole) <= max {
        return vec![whole];
    }
    match block.fence {
        Some(fence) => {
            let marker: String = fence
                .chars()
                .take_while(|c| *c == '`' || *c == '~')
                .collect();
            let closed =
                block.lines.len() > 1 && block.lines.last().is_some_and(|last| closes(fence, last));
            let inner_end = if closed {
                block.lines.len() - 1
            } else {
                block.lines.len()
            };
            let room = max.saturating_sub(units(fence) + units(&marker) + 2).max(1);
            pack_lines(block.lines[1..inner_end].iter().copied(), room)
                .into_iter()
                .map(|piece| format!("{fence}\n{piece}\n{marker}"))
                .collect()
        }
        None => pack_lines(block.lines.iter().copied(), max),
    }
}

/// Cuts a Markdown reply into pieces of at most `max` UTF-16 units,
/// between paragraphs and code blocks where it can, inside them (closing
/// and reopening a code block's fence) where it must. Blank lines between
/// blocks become one blank line.
pub fn split(text: &str, max: usize) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    for block in blocks(text) {
        for piece in fit(&block, max) {
            if current.is_empty() {
                current = piece;
            } else if units(&current) + 2 + units(&piece) <= max {
                current.push_str("\n\n");
                current.push_str(&piece);
            } else {
                chunks.push(std::mem::replace(&mut current, piece));
            }
        }
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_becomes_telegram_html() {
        let html = to_html(
            "# Title\n\nSome **bold**, *it*, ~~gone~~ and `a<b>`.\n\n\
             - one\n- two\n  1. nested\n\n\
             ```rust\nfn main() { 1 < 2 }\n```\n\n\
             > quoted\n\n[site](https://example.com/?a=1&b=\"2\") [bad](javascript:alert(1))",
        );
        assert_eq!(
            html,
            "<b>Title</b>\n\n\
             Some <b>bold</b>, <i>it</i>, <s>gone</s> and <code>a&lt;b&gt;</code>.\n\n\
             • one\n• two\n  1. nested\n\n\
             <pre><code class=\"language-rust\">fn main() { 1 &lt; 2 }</code></pre>\n\n\
             <blockquote>quoted</blockquote>\n\n\
             <a href=\"https://example.com/?a=1&amp;b=&quot;2&quot;\">site</a> bad"
        );
    }

    #[test]
    fn hostile_text_is_escaped_everywhere() {
        let hostile = "<b>not bold</b> & <a href=\"x\">x</a> <script>\n\n```\n</pre><b>\n```";
        let html = to_html(hostile);
        assert!(!html.contains("<b>not"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;b&gt;not bold&lt;/b&gt; &amp; &lt;a href=&quot;x&quot;&gt;"));
        assert!(
            html.contains("<pre><code>&lt;/pre&gt;&lt;b&gt;</code></pre>"),
            "{html}"
        );
        // Every tag the renderer opened is closed, in order.
        let mut open = Vec::new();
        for tag in html.split('<').skip(1) {
            let name: String = tag
                .chars()
                .take_while(|c| c.is_ascii_alphabetic() || *c == '/')
                .collect();
            match name.strip_prefix('/') {
                Some(closing) => assert_eq!(open.pop().as_deref(), Some(closing), "{html}"),
                None => open.push(name),
            }
        }
        assert!(open.is_empty(), "{html}");
    }

    #[test]
    fn long_replies_split_on_paragraphs_and_code_blocks() {
        let paragraph = "word ".repeat(300); // 1,500 units
        let code: String = (0..400).map(|i| format!("let x{i} = {i};\n")).collect();
        let text = format!("{paragraph}\n\n{paragraph}\n\n```rust\n{code}```\n\n{paragraph}");
        let pieces = split(&text, 4096);
        assert!(pieces.len() >= 3, "{}", pieces.len());
        for piece in &pieces {
            assert!(units(piece) <= 4096, "{}", units(piece));
            // Every piece has balanced fences, so it renders on its own.
            assert_eq!(piece.matches("```").count() % 2, 0, "{piece}");
        }
        // Nothing is lost: the words and the code lines all arrive, in order.
        let joined = pieces.join("\n");
        assert_eq!(joined.matches("word").count(), 900);
        for i in [0, 199, 399] {
            assert!(joined.contains(&format!("let x{i} = {i};")));
        }
        let first_code = joined.find("let x0 =").unwrap();
        let last_code = joined.find("let x399 =").unwrap();
        assert!(first_code < last_code);
        // The first paragraph is whole in the first piece.
        assert!(pieces[0].starts_with("word word"));
        assert!(!pieces[0].contains("```"));
    }

    #[test]
    fn a_single_huge_word_and_wide_characters_still_fit() {
        let text = "😀".repeat(3000); // 6,000 units
        let pieces = split(&text, 4096);
        assert_eq!(pieces.len(), 2);
        assert!(pieces.iter().all(|p| units(p) <= 4096));
        assert_eq!(pieces.concat(), text);
        assert!(split("", 4096).is_empty());
        assert_eq!(split("short", 4096), ["short"]);
    }
}
