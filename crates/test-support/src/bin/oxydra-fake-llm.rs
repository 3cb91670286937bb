//! `oxydra-fake-llm`: a scripted fake LLM server, so Oxydra can run offline
//! against a known conversation.
//!
//! Prints one line, `listening on <base_url>`, once it accepts connections,
//! then serves until SIGINT or SIGTERM. A script that cannot be read or
//! parsed exits with code 2.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use test_support::{FakeLlm, Script, WhenExhausted, WireFormat};

/// Exit code for an unusable script file, the same as for bad arguments.
const EXIT_BAD_SCRIPT: u8 = 2;

/// The `--format` values, spelled as in the script file.
const FORMATS: [&str; 4] = ["openai", "openai_responses", "anthropic", "gemini"];

/// Serve a scripted conversation in one LLM vendor's wire format.
#[derive(Debug, Parser)]
#[command(name = "oxydra-fake-llm", version)]
struct Args {
    /// JSON script: {"format": "openai", "when_exhausted": "echo", "replies": [...]}.
    /// Without it the server echoes every user message.
    #[arg(long, value_name = "FILE")]
    script: Option<PathBuf>,

    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,

    /// Wire format, overriding the script's [default without a script: openai].
    #[arg(long, value_parser = PossibleValuesParser::new(FORMATS).try_map(parse_format))]
    format: Option<WireFormat>,
}

fn parse_format(name: String) -> Result<WireFormat, serde_json::Error> {
    serde_json::from_value(serde_json::Value::String(name))
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let mut script = match &args.script {
        Some(path) => match read_script(path) {
            Ok(script) => script,
            Err(message) => {
                eprintln!("oxydra-fake-llm: {message}");
                return Ok(ExitCode::from(EXIT_BAD_SCRIPT));
            }
        },
        None => Script {
            format: WireFormat::Openai,
            when_exhausted: WhenExhausted::Echo,
            replies: Vec::new(),
        },
    };
    if let Some(format) = args.format {
        script.format = format;
    }
    let replies = script.replies.len();
    let format = format_name(script.format);

    let signals = Signals::register()?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let fake = FakeLlm::bind(script, addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", fake.base_url()).context("cannot write to stdout")?;
    stdout.flush().context("cannot flush stdout")?;
    eprintln!(
        "oxydra-fake-llm: serving {replies} scripted replies in the {format} format; stop with Ctrl-C"
    );

    signals.wait().await;
    drop(fake);
    Ok(ExitCode::SUCCESS)
}

/// The name of `format` as written in scripts and on the command line.
fn format_name(format: WireFormat) -> &'static str {
    match format {
        WireFormat::Openai => FORMATS[0],
        WireFormat::OpenaiResponses => FORMATS[1],
        WireFormat::Anthropic => FORMATS[2],
        WireFormat::Gemini => FORMATS[3],
    }
}

/// Reads and parses the script, describing any failure with the file name.
fn read_script(path: &Path) -> Result<Script, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read script {}: {error}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|error| format!("invalid script {}: {error}", path.display()))
}

/// SIGINT and SIGTERM, registered before the server announces itself so
/// that a signal sent right after the `listening on` line is not missed.
#[cfg(unix)]
#[derive(Debug)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn register() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Ctrl-C, where Unix signals do not exist.
#[cfg(not(unix))]
#[derive(Debug)]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn register() -> anyhow::Result<Self> {
        Ok(Self)
    }

    async fn wait(self) {
        // If Ctrl-C cannot be watched, the process is stopped by other means.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
