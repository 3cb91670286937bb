use tools_macros::tool;
use types::ToolError;

/// Read a range of lines; `mut` arguments are fine.
#[tool]
pub async fn file_read(
    mut path: String,
    (start, end): (u64, u64),
    _: bool,
) -> Result<String, ToolError> {
    path.push_str(&format!(":{start}-{end}"));
    Ok(path)
}

fn main() {}
