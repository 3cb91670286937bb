use tools_macros::tool;
use types::ToolError;

/// Read a file.
#[tool]
pub fn file_read(path: String) -> Result<String, ToolError> {
    Ok(path)
}

fn main() {}
