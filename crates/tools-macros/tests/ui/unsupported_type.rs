use std::collections::HashMap;

use tools_macros::tool;
use types::ToolError;

struct Range {
    start: u64,
}

/// Send a request.
#[tool]
pub async fn request(
    headers: HashMap<String, String>,
    range: Range,
    body: &[u8],
    retries: Option<Option<u8>>,
    ranges: Vec<Range>,
) -> Result<String, ToolError> {
    Ok(format!(
        "{headers:?} {} {body:?} {retries:?} {}",
        range.start,
        ranges.len()
    ))
}

fn main() {}
