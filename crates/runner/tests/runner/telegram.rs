//! The Telegram channel end to end: the real runner (foreground and
//! `--daemon`) and guest, the fake LLM, and the fake Bot API in
//! `test-support`. Strangers are refused and audited without reaching the
//! model; an allowed person's chat streams, splits, formats and survives a
//! rate limit; the chat keeps its session across a runner restart; `/new`
//! starts another; a refused token shows as an unhealthy channel.

use std::time::Duration;

use test_support::{Chunking, FakeTelegram, ScriptedReply, ScriptedToolCall, SentMessage};

use crate::{Fixture, Runner, echo_llm};

const TOKEN: &str = "123456:fake-token";
const ALICE: i64 = 1001;
const STRANGER: i64 = 2002;
const CHAT_PATIENCE: Duration = Duration::from_secs(60);

fn telegram_fixture(llm_base_url: &str, telegram_url: &str) -> Fixture {
    let fixture = Fixture::new(llm_base_url);
    fixture.write(
        "users/alice.toml",
        &format!(
            "[credentials]\nOPENAI_API_KEY = {{ env = \"ALICE_OPENAI_KEY\" }}\n\
             [channels.telegram]\nbot_token = {{ env = \"TELEGRAM_BOT_TOKEN\" }}\n\
             allowed_sender_ids = [\"{ALICE}\"]\napi_base_url = \"{telegram_url}\"\n\
             reject_message = \"This bot is private.\"\n"
        ),
    );
    fixture
}

fn start(fixture: &Fixture, args: &[&str], token: &str) -> Runner {
    let mut command = fixture.command(args);
    command.env("TELEGRAM_BOT_TOKEN", token);
    crate::spawn(command, fixture.path())
}

async fn start_foreground(fixture: &Fixture) -> Runner {
    let mut runner = start(fixture, &["start"], TOKEN);
    runner.wait_until_running().await;
    let deadline = std::time::Instant::now() + crate::PATIENCE;
    while !runner.stdout().contains("channel 'telegram' started") {
        runner.assert_alive();
        assert!(std::time::Instant::now() < deadline, "{}", runner.stdout());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    runner
}

/// Whether a message shows the final, formatted form of a reply
/// containing `text`.
fn final_reply(messages: &[SentMessage], text: &str) -> bool {
    messages
        .iter()
        .any(|m| m.text.contains(text) && m.parse_mode.as_deref() == Some("HTML"))
}

fn request_texts(llm: &test_support::FakeLlm) -> Vec<String> {
    llm.requests()
        .iter()
        .map(|request| request.body.to_string())
        .collect()
}

/// Telegram's HTML with the tags removed and the entities decoded.
fn visible(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

#[tokio::test]
async fn a_telegram_chat_talks_to_the_agent_and_strangers_are_refused() {
    let _turn = crate::GUESTS.lock().await;
    let llm = echo_llm().await;
    let telegram = FakeTelegram::start(TOKEN).await;
    let fixture = telegram_fixture(&llm.base_url(), &telegram.base_url());
    let mut runner = start_foreground(&fixture).await;

    // A stranger first: refused, audited, told once, never reaching the
    // model. Then alice, whose message is answered by the fake LLM.
    telegram.push_text(STRANGER, STRANGER, "let me in");
    telegram.push_text(STRANGER, STRANGER, "please");
    telegram.push_text(ALICE, ALICE, "hello there");
    telegram
        .wait_for_chat(ALICE, CHAT_PATIENCE, |m| {
            final_reply(m, "You said: hello there")
        })
        .await;
    let stranger_chat = telegram.chat(STRANGER);
    assert_eq!(
        stranger_chat
            .iter()
            .map(|m| m.text.as_str())
            .collect::<Vec<_>>(),
        ["This bot is private."],
        "the rejection is rate-limited to one"
    );
    assert!(
        request_texts(&llm)
            .iter()
            .all(|body| !body.contains("let me in") && !body.contains("please")),
        "a stranger's text reached the model"
    );
    let audit =
        std::fs::read_to_string(fixture.path().join("workspaces/.runner/audit/alice.jsonl"))
            .unwrap();
    assert_eq!(audit.lines().count(), 2, "{audit}");
    assert!(
        audit.contains("\"kind\":\"sender_refused\"")
            && audit.contains("\"sender_id\":\"2002\"")
            && audit.contains("allowed_sender_ids"),
        "{audit}"
    );
    assert!(
        !audit.contains("let me in"),
        "audit records hold no message text"
    );
    let shown = fixture.run(&["audit"]);
    assert_eq!(shown.code, Some(0), "{shown:?}");
    assert!(
        shown.stdout.contains("sender_refused") && shown.stdout.contains("telegram sender 2002"),
        "{}",
        shown.stdout
    );
    // A typing indicator was shown while the turn ran.
    assert!(
        telegram
            .calls_to("sendChatAction")
            .iter()
            .any(|call| call.params["chat_id"] == ALICE && call.params["action"] == "typing")
    );

    // /status answers from the gateway.
    telegram.push_text(ALICE, ALICE, "/status");
    telegram
        .wait_for_chat(ALICE, CHAT_PATIENCE, |m| {
            m.iter().any(|m| m.text.contains("Agent: healthy"))
        })
        .await;

    // A streamed reply: sent as soon as text arrives, edited at most once
    // a second while it grows, then replaced by its formatted form.
    let words: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
    llm.push(
        ScriptedReply::text(words.join(" "))
            .with_chunking(Chunking::PerEvent)
            .with_chunk_delay_ms(100),
    );
    telegram.push_text(ALICE, ALICE, "stream please");
    let chat = telegram
        .wait_for_chat(ALICE, CHAT_PATIENCE, |m| {
            final_reply(m, "w0 w1") && final_reply(m, "w39")
        })
        .await;
    let streamed = chat.iter().find(|m| m.text.contains("w39")).unwrap();
    let first_send = telegram
        .calls_to("sendMessage")
        .into_iter()
        .find(|call| {
            call.params["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("w0"))
        })
        .unwrap();
    let first_text = first_send.params["text"].as_str().unwrap();
    assert!(
        !first_text.contains("w39"),
        "the reply was sent before it was complete: {first_text}"
    );
    let edits: Vec<_> = telegram
        .calls_to("editMessageText")
        .into_iter()
        .filter(|call| call.params["message_id"] == streamed.message_id)
        .collect();
    // ~4 s of streaming: at most one edit per second, plus the final one.
    assert!(
        (2..=7).contains(&edits.len()),
        "{} edits: {:?}",
        edits.len(),
        edits.iter().map(|e| &e.params["text"]).collect::<Vec<_>>()
    );
    for pair in edits[..edits.len() - 1].windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(900), "edits {gap:?} apart");
    }

    // A 10,000-character answer arrives whole, in pieces Telegram accepts,
    // cut between paragraphs.
    let paragraphs: Vec<String> = (0..20)
        .map(|i| format!("Paragraph {i}: {}", "lorem ipsum ".repeat(41)))
        .collect();
    let long = format!("{}\n\nTHE END", paragraphs.join("\n\n"));
    assert!(long.chars().count() > 10_000);
    llm.push(ScriptedReply::text(long.clone()));
    telegram.push_text(ALICE, ALICE, "write a lot");
    let chat = telegram
        .wait_for_chat(ALICE, CHAT_PATIENCE, |m| final_reply(m, "THE END"))
        .await;
    let pieces: Vec<&SentMessage> = chat
        .iter()
        .filter(|m| m.text.contains("Paragraph ") || m.text.contains("THE END"))
        .collect();
    assert!(pieces.len() >= 3, "{} pieces", pieces.len());
    let mut joined = String::new();
    for piece in &pieces {
        assert_eq!(piece.parse_mode.as_deref(), Some("HTML"));
        let text = visible(&piece.text);
        assert!(text.encode_utf16().count() <= 4096);
        assert!(
            text.starts_with("Paragraph") || text.starts_with("THE END"),
            "cut mid-paragraph: {text:.40}"
        );
        joined.push_str(&text);
        joined.push_str("\n\n");
    }
    for paragraph in &paragraphs {
        assert!(
            joined.contains(paragraph.trim_end()),
            "a paragraph was lost"
        );
    }

    // Hostile text is escaped, so Telegram accepts it as HTML.
    llm.push(ScriptedReply::text(
        "<b>not bold</b> & 1 < 2 **bold** `x<y` [link](javascript:alert(1))",
    ));
    telegram.push_text(ALICE, ALICE, "be hostile");
    let chat = telegram
        .wait_for_chat(ALICE, CHAT_PATIENCE, |m| final_reply(m, "not bold"))
        .await;
    let hostile = chat
        .iter()
        .rev()
        .find(|m| m.text.contains("not bold"))
        .unwrap();
    assert_eq!(
        hostile.text,
        "&lt;b&gt;not bold&lt;/b&gt; &amp; 1 &lt; 2 <b>bold</b> <code>x&lt;y</code> link"
    );

    // A rate limit is waited out, and the reply still arrives.
    let sent_before = telegram.calls_to("sendMessage").len();
    telegram.fail_next("sendMessage", 1, 429, Some(1));
    telegram.push_text(ALICE, ALICE, "after the limit");
    telegram
        .wait_for_chat(ALICE, CHAT_PATIENCE, |m| {
            final_reply(m, "You said: after the limit")
        })
        .await;
    let sends = telegram.calls_to("sendMessage");
    let (limited, retried) = (&sends[sent_before], &sends[sent_before + 1]);
    assert_eq!(limited.params["text"], retried.params["text"]);
    assert!(retried.at - limited.at >= Duration::from_secs(1));

    // A document lands in the workspace's inbox, and the agent's own
    // file tool reads it there.
    llm.push_all([
        ScriptedReply::tool_calls(vec![ScriptedToolCall::new(
            "file_read",
            r#"{"path": "/shared/inbox/notes.txt"}"#,
        )]),
        ScriptedReply::text("I read your notes."),
    ]);
    telegram.push_document(
        ALICE,
        ALICE,
        "notes.txt",
        b"remember the milk",
        Some("read this"),
    );
    telegram
        .wait_for_chat(ALICE, CHAT_PATIENCE, |m| {
            final_reply(m, "I read your notes.")
        })
        .await;
    assert_eq!(
        std::fs::read_to_string(fixture.workspace().join("shared/inbox/notes.txt")).unwrap(),
        "remember the milk"
    );
    let bodies = request_texts(&llm);
    assert!(bodies[bodies.len() - 2].contains("/shared/inbox/notes.txt"));
    assert!(bodies[bodies.len() - 1].contains("remember the milk"));

    // The agent sends a file back with send_file: the guest's tool, the
    // gateway's frame, the channel's upload.
    llm.push_all([
        ScriptedReply::tool_calls(vec![ScriptedToolCall::new(
            "send_file",
            r#"{"path": "/shared/inbox/notes.txt", "caption": "your notes"}"#,
        )]),
        ScriptedReply::text("Sent them back."),
    ]);
    telegram.push_text(ALICE, ALICE, "send my notes back");
    telegram
        .wait_for_chat(ALICE, CHAT_PATIENCE, |m| final_reply(m, "Sent them back."))
        .await;
    let documents = telegram.documents();
    assert_eq!(documents.len(), 1, "{documents:?}");
    assert_eq!(documents[0].file_name, "notes.txt");
    assert_eq!(documents[0].contents, b"remember the milk");
    assert_eq!(documents[0].caption.as_deref(), Some("your notes"));

    // A restarted runner continues the chat's session and handles no
    // update twice.
    let chat_sessions = || {
        let path = fixture
            .path()
            .join("workspaces/.runner/channels/alice/telegram.json");
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        state["sessions"].clone()
    };
    let sessions_before = chat_sessions();
    assert!(sessions_before["1001"].is_string(), "{sessions_before}");
    assert_eq!(runner.terminate().await, Some(0), "{}", runner.stderr());
    // Telegram forgets only what a later poll confirms: a runner that
    // forgot its offset would be sent its last batch again.
    let offset = telegram.confirmed_offset();
    let polls_before = telegram.calls_to("getUpdates").len();
    let answered = |chat: &[SentMessage]| {
        chat.iter()
            .filter(|m| m.text == "You said: hello there")
            .count()
    };
    let mut runner = start_foreground(&fixture).await;
    telegram.push_text(ALICE, ALICE, "do you remember?");
    let chat = telegram
        .wait_for_chat(ALICE, CHAT_PATIENCE, |m| {
            final_reply(m, "You said: do you remember?")
        })
        .await;
    assert_eq!(answered(&chat), 1, "an update was handled twice");
    let first_poll = &telegram.calls_to("getUpdates")[polls_before];
    assert!(offset > 0);
    assert_eq!(
        first_poll.params["offset"], offset,
        "the restarted runner did not poll from its recorded offset"
    );
    let remembered = request_texts(&llm).last().cloned().unwrap();
    assert!(
        remembered.contains("hello there"),
        "the session did not continue: {remembered}"
    );
    assert_eq!(chat_sessions(), sessions_before);

    // /new: another session for this chat; the old one stays stored.
    telegram.push_text(ALICE, ALICE, "/new");
    telegram
        .wait_for_chat(ALICE, CHAT_PATIENCE, |m| {
            m.iter().any(|m| m.text.starts_with("🆕 New conversation"))
        })
        .await;
    telegram.push_text(ALICE, ALICE, "fresh start");
    telegram
        .wait_for_chat(ALICE, CHAT_PATIENCE, |m| {
            final_reply(m, "You said: fresh start")
        })
        .await;
    let fresh = request_texts(&llm).last().cloned().unwrap();
    assert!(
        !fresh.contains("hello there"),
        "the new session carried the old history"
    );
    assert_ne!(chat_sessions(), sessions_before);
    assert_eq!(runner.terminate().await, Some(0), "{}", runner.stderr());
}

#[tokio::test]
async fn a_refused_token_is_an_unhealthy_channel_and_the_runner_keeps_serving() {
    let _turn = crate::GUESTS.lock().await;
    let llm = echo_llm().await;
    let telegram = FakeTelegram::start(TOKEN).await;
    let fixture = telegram_fixture(&llm.base_url(), &telegram.base_url());
    let mut supervisor = start(&fixture, &["--daemon", "start"], "123456:wrong");
    supervisor.wait_for_file(&fixture.control_socket()).await;
    let deadline = std::time::Instant::now() + crate::PATIENCE;
    loop {
        let status = fixture.run(&["status"]);
        // The guest serves whatever the channel's trouble.
        if status
            .stdout
            .contains("channel:    telegram: unhealthy: Telegram refused the bot token")
            && status.stdout.contains("guest:      running")
        {
            break;
        }
        supervisor.assert_alive();
        assert!(std::time::Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let json = fixture.run(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(status["channels"]["telegram"]["status"], "unhealthy");
    // Nothing but getMe was tried with the refused token.
    assert!(telegram.calls().iter().all(|call| call.method == "getMe"));
    assert_eq!(fixture.run(&["stop"]).code, Some(0));
    supervisor.wait_exit().await;
}

#[test]
fn channel_configuration_mistakes_are_named_at_start() {
    let fixture = Fixture::new("http://127.0.0.1:9");
    fixture.write(
        "users/alice.toml",
        "[channels.telegram]\nbot_token = { env = \"TELEGRAM_BOT_TOKEN\" }\n",
    );
    let open = fixture.run(&["start"]);
    assert_ne!(open.code, Some(0));
    assert!(
        open.stderr.contains("users/alice.toml")
            && open
                .stderr
                .contains("allowed_sender_ids is missing or empty: there is no open mode"),
        "{}",
        open.stderr
    );
    fixture.write(
        "users/alice.toml",
        "[channels.telegram]\nbot_token = { env = \"TELEGRAM_BOT_TOKEN\" }\nallowed_sender_ids = [\"1\"]\n",
    );
    let no_token = fixture.run(&["start"]);
    assert_ne!(no_token.code, Some(0));
    assert!(
        no_token.stderr.contains("channels.telegram.bot_token")
            && no_token.stderr.contains("TELEGRAM_BOT_TOKEN is not set"),
        "{}",
        no_token.stderr
    );
}
