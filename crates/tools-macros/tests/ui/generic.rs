use tools_macros::tool;
use types::ToolError;

/// Read a file.
#[tool]
pub async fn file_read<'a>(path: &'a str) -> Result<String, ToolError> {
    Ok(path.to_string())
}

/// Read a file, generically.
#[tool]
pub async fn file_read_where(path: String) -> Result<String, ToolError>
where
    String: Clone,
{
    Ok(path)
}

fn main() {}
