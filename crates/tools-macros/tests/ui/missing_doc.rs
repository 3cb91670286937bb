use tools_macros::tool;
use types::ToolError;

#[tool]
pub async fn file_read(
    /// Workspace path.
    path: String,
) -> Result<String, ToolError> {
    Ok(path)
}

fn main() {}
