use tools_macros::tool;
use types::ToolError;

struct Files;

impl Files {
    /// Read a file.
    #[tool]
    pub async fn file_read(&self, path: String) -> Result<String, ToolError> {
        Ok(path)
    }
}

fn main() {
    let _ = Files.file_read(String::new());
}
