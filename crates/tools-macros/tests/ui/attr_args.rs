use tools_macros::tool;
use types::ToolError;

/// Read a file.
#[tool(name = "read")]
pub async fn file_read(path: String) -> Result<String, ToolError> {
    Ok(path)
}

fn main() {}
