//! The `#[tool]` attribute: it turns a documented `async fn` into the
//! `types::FunctionDecl` the model reads, so a tool's name, description and
//! argument schema cannot drift from its Rust signature.
//!
//! This crate only generates code. It owns the mapping from Rust argument
//! types to JSON Schema and the compile errors for signatures that cannot be
//! tools; it knows nothing about the tool registry, policies or execution,
//! and refers to the `types` crate only through absolute `::types::…` paths
//! in the code it emits (so callers must depend on `types`).
//!
//! ```
//! use tools_macros::tool;
//! use types::ToolError;
//!
//! /// Read a UTF-8 text file from the workspace.
//! #[tool]
//! pub async fn file_read(
//!     /// Workspace path such as /shared/notes.md
//!     path: String,
//!     /// First line to return, 1-based
//!     start_line: Option<u64>,
//! ) -> Result<String, ToolError> {
//!     Ok(format!("{path} from line {}", start_line.unwrap_or(1)))
//! }
//!
//! // The macro adds a hidden sibling with the same visibility.
//! let decl = __tool_function_decl_file_read();
//! assert_eq!(decl.name, "file_read");
//! assert_eq!(decl.description, "Read a UTF-8 text file from the workspace.");
//! assert_eq!(
//!     serde_json::to_value(&decl.parameters).unwrap(),
//!     serde_json::json!({
//!         "type": "object",
//!         "properties": {
//!             "path": {"type": "string", "description": "Workspace path such as /shared/notes.md"},
//!             "start_line": {"type": "integer", "minimum": 0, "description": "First line to return, 1-based"}
//!         },
//!         "required": ["path"],
//!         "additionalProperties": false
//!     })
//! );
//! ```

mod expand;
mod parse;
mod schema;

use proc_macro::TokenStream;

/// Declares an `async fn` as a tool.
///
/// Re-emits the function with its parameter doc comments removed (rustc
/// rejects them) and adds `#[doc(hidden)] fn __tool_function_decl_<name>()
/// -> ::types::FunctionDecl` with the function's visibility. The tool name is
/// the function name, the description is the function's doc comment, and
/// each argument becomes a property whose description is the argument's doc
/// comment. Supported argument types: `String`, `&str`, `bool`, the integer
/// types (unsigned ones get `minimum: 0`), `f32`, `f64`, `Vec<T>`, and
/// `Option<T>` around the whole type for an argument that is not required.
#[proc_macro_attribute]
pub fn tool(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(attr.into(), item.into()).into()
}
