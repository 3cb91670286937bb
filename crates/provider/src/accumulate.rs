//! Reassembles streamed items into a complete answer: text deltas are
//! concatenated, tool-call fragments are joined by index (several calls may
//! interleave), signed reasoning becomes the message's reasoning blocks, and
//! usage and finish reason are kept.

use std::collections::BTreeMap;

use types::{
    FinishReason, Message, ProviderError, ProviderStream, ReasoningBlock, Response, ResponseRef,
    Signature, StreamItem, ToolCall, UsageUpdate,
};

#[derive(Debug, Default)]
struct PartialCall {
    id: Option<String>,
    name: Option<String>,
    arguments: String,
    signature: Option<Signature>,
}

/// Tool-call fragments keyed by index; the first fragment carrying an id or
/// name sets it, argument fragments are appended in arrival order.
#[derive(Debug, Default)]
pub struct ToolCallAccumulator {
    calls: BTreeMap<u32, PartialCall>,
}

impl ToolCallAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, index: u32, id: Option<&str>, name: Option<&str>, fragment: &str) {
        let call = self.calls.entry(index).or_default();
        if call.id.is_none() {
            call.id = id.filter(|s| !s.is_empty()).map(str::to_owned);
        }
        if call.name.is_none() {
            call.name = name.filter(|s| !s.is_empty()).map(str::to_owned);
        }
        call.arguments.push_str(fragment);
    }

    /// Sets the vendor signature of call `index` (the last one wins).
    pub fn sign(&mut self, index: u32, signature: Signature) {
        self.calls.entry(index).or_default().signature = Some(signature);
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The complete calls in index order. A call whose name never arrived
    /// is a protocol error; a missing id is generated (`call_<index>`).
    pub fn finish(self) -> Result<Vec<ToolCall>, ProviderError> {
        self.calls
            .into_iter()
            .map(|(index, call)| {
                let name = call.name.ok_or_else(|| {
                    ProviderError::ResponseParse(format!(
                        "tool call {index} arrived without a name"
                    ))
                })?;
                Ok(ToolCall {
                    id: call.id.unwrap_or_else(|| format!("call_{index}")),
                    name,
                    arguments: call.arguments,
                    signature: call.signature,
                })
            })
            .collect()
    }
}

/// Everything a stream produced, folded into one value.
#[derive(Debug, Default)]
pub struct StreamCollector {
    text: String,
    /// Every reasoning fragment, signed or not, for display.
    reasoning: String,
    /// Reasoning since the last block ended: the text the next
    /// `ReasoningEnd` closes.
    unsigned: String,
    /// Signed and redacted reasoning blocks, kept on the message.
    blocks: Vec<ReasoningBlock>,
    tools: ToolCallAccumulator,
    usage: Option<UsageUpdate>,
    finish_reason: Option<FinishReason>,
    response_ref: Option<ResponseRef>,
    lost: Option<String>,
}

impl StreamCollector {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, item: StreamItem) {
        match item {
            StreamItem::Text(text) => self.text.push_str(&text),
            StreamItem::ReasoningDelta(text) => {
                self.reasoning.push_str(&text);
                self.unsigned.push_str(&text);
            }
            StreamItem::ReasoningEnd { signature } => {
                let text = std::mem::take(&mut self.unsigned);
                if let Some(signature) = signature {
                    self.blocks
                        .push(ReasoningBlock::Thinking { text, signature });
                }
            }
            StreamItem::RedactedReasoning(data) => {
                self.blocks.push(ReasoningBlock::Redacted { data });
            }
            StreamItem::ToolCallSignature { index, signature } => self.tools.sign(index, signature),
            StreamItem::ResponseRef(response_ref) => self.response_ref = Some(response_ref),
            StreamItem::ToolCallDelta {
                index,
                id,
                name,
                arguments_fragment,
            } => self
                .tools
                .push(index, id.as_deref(), name.as_deref(), &arguments_fragment),
            StreamItem::UsageUpdate(usage) => {
                self.usage
                    .get_or_insert_with(UsageUpdate::default)
                    .accumulate(&usage);
            }
            StreamItem::FinishReason(reason) => self.finish_reason = Some(reason),
            StreamItem::ConnectionLost(reason) => self.lost = Some(reason),
        }
    }

    /// The reasoning trace received so far.
    pub fn reasoning(&self) -> &str {
        &self.reasoning
    }

    /// The complete response, or `ConnectionLost` if the stream broke.
    /// Reasoning that no signed block end closed is left out of the
    /// message: it was only for display, and no vendor wants it back.
    pub fn finish(self) -> Result<Response, ProviderError> {
        if let Some(reason) = self.lost {
            return Err(ProviderError::ConnectionLost(reason));
        }
        let tool_calls = self.tools.finish()?;
        let content = (!self.text.is_empty()).then_some(self.text);
        Ok(Response {
            message: Message {
                reasoning: self.blocks,
                response_ref: self.response_ref,
                ..Message::assistant_tool_calls(content, tool_calls)
            },
            finish_reason: self.finish_reason,
            usage: self.usage,
        })
    }
}

/// Drains a stream into a complete `Response`.
pub async fn collect_stream(mut stream: ProviderStream) -> Result<Response, ProviderError> {
    let mut collector = StreamCollector::new();
    while let Some(item) = stream.recv().await {
        collector.push(item);
    }
    collector.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_calls_are_reassembled_by_index() {
        let mut acc = ToolCallAccumulator::new();
        acc.push(1, Some("call_b"), Some("file_list"), "");
        acc.push(0, Some("call_a"), Some("file_read"), "{\"pa");
        acc.push(1, None, None, "{\"path\":");
        acc.push(0, None, None, "th\":\"/shared/a\"}");
        acc.push(1, Some("ignored"), Some("ignored"), "\"/tmp\"}");
        let calls = acc.finish().unwrap();
        assert_eq!(
            calls,
            vec![
                ToolCall::new("call_a", "file_read", "{\"path\":\"/shared/a\"}"),
                ToolCall::new("call_b", "file_list", "{\"path\":\"/tmp\"}"),
            ]
        );
    }

    #[test]
    fn missing_name_is_an_error_and_missing_id_is_generated() {
        let mut acc = ToolCallAccumulator::new();
        acc.push(0, None, None, "{}");
        assert!(
            acc.finish()
                .unwrap_err()
                .to_string()
                .contains("without a name")
        );
        let mut acc = ToolCallAccumulator::new();
        acc.push(3, Some(""), Some("x"), "{}");
        assert_eq!(acc.finish().unwrap()[0].id, "call_3");
    }

    #[tokio::test]
    async fn collect_stream_folds_items() {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        for item in [
            StreamItem::Text("Hel".into()),
            StreamItem::ReasoningDelta("hmm".into()),
            StreamItem::Text("lo".into()),
            StreamItem::UsageUpdate(UsageUpdate::new(3, 2)),
            StreamItem::FinishReason(FinishReason::Stop),
        ] {
            tx.send(item).await.unwrap();
        }
        drop(tx);
        let response = collect_stream(rx).await.unwrap();
        assert_eq!(response.message.content.as_deref(), Some("Hello"));
        assert_eq!(response.usage.unwrap().total_tokens, 5);
        assert_eq!(response.finish_reason, Some(FinishReason::Stop));
    }

    fn signature(value: &str) -> Signature {
        Signature {
            model: "m".into(),
            value: value.into(),
        }
    }

    #[test]
    fn signed_reasoning_and_call_signatures_are_kept_and_unsigned_reasoning_is_not() {
        let mut collector = StreamCollector::new();
        for item in [
            StreamItem::ReasoningDelta("First ".into()),
            StreamItem::ReasoningDelta("thought.".into()),
            StreamItem::ReasoningEnd {
                signature: Some(signature("sig-1")),
            },
            StreamItem::RedactedReasoning(signature("sealed")),
            // An unsigned block ends without taking the next one's text.
            StreamItem::ReasoningDelta("Lost. ".into()),
            StreamItem::ReasoningEnd { signature: None },
            StreamItem::ReasoningDelta("Second.".into()),
            StreamItem::ReasoningEnd {
                signature: Some(signature("sig-2")),
            },
            StreamItem::ToolCallDelta {
                index: 0,
                id: Some("c0".into()),
                name: Some("file_read".into()),
                arguments_fragment: "{}".into(),
            },
            StreamItem::ToolCallSignature {
                index: 0,
                signature: signature("call-sig"),
            },
            StreamItem::ToolCallDelta {
                index: 1,
                id: Some("c1".into()),
                name: Some("file_list".into()),
                arguments_fragment: "{}".into(),
            },
            // A trailing thought nobody signed is display only.
            StreamItem::ReasoningDelta(" Unsigned.".into()),
        ] {
            collector.push(item);
        }
        assert_eq!(
            collector.reasoning(),
            "First thought.Lost. Second. Unsigned."
        );
        let message = collector.finish().unwrap().message;
        assert_eq!(
            message.reasoning,
            vec![
                ReasoningBlock::Thinking {
                    text: "First thought.".into(),
                    signature: signature("sig-1"),
                },
                ReasoningBlock::Redacted {
                    data: signature("sealed"),
                },
                ReasoningBlock::Thinking {
                    text: "Second.".into(),
                    signature: signature("sig-2"),
                },
            ]
        );
        assert_eq!(message.tool_calls[0].signature, Some(signature("call-sig")));
        assert_eq!(message.tool_calls[1].signature, None);
    }

    #[tokio::test]
    async fn lost_streams_are_errors() {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tx.send(StreamItem::Text("partial".into())).await.unwrap();
        tx.send(StreamItem::ConnectionLost("reset".into()))
            .await
            .unwrap();
        drop(tx);
        assert_eq!(
            collect_stream(rx).await.unwrap_err(),
            ProviderError::ConnectionLost("reset".into())
        );
    }
}
