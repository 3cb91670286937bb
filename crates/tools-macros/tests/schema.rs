//! The declarations `#[tool]` generates, compared as the JSON the model sees,
//! and proof that the annotated functions are still ordinary `async fn`s.

use std::pin::pin;
use std::task::{Context, Poll, Waker};

use serde_json::json;
use tools_macros::tool;
use types::{FunctionDecl, ToolError};

/// Read a UTF-8 text file from the workspace.
#[tool]
pub async fn file_read(
    /// Workspace path such as /shared/notes.md
    path: String,
    /// First line to return, 1-based
    start_line: Option<u64>,
    globs: Vec<String>,
) -> Result<String, ToolError> {
    Ok(format!(
        "{path}:{}:{}",
        start_line.unwrap_or(1),
        globs.join(",")
    ))
}

/// Strings, booleans and floating-point numbers.
#[tool]
async fn text_and_numbers(
    owned: String,
    borrowed: &str,
    fixed: &'static str,
    /// Whether to go on
    flag: bool,
    x: f32,
    y: f64,
) -> Result<String, ToolError> {
    Ok(format!(
        "{owned}{borrowed}{fixed} {flag} {}",
        f64::from(x) + y
    ))
}

/// Signed integers.
#[tool]
async fn signed(a: i8, b: i16, c: i32, d: i64, e: i128, f: isize) -> Result<String, ToolError> {
    let sum = i128::from(a) + i128::from(b) + i128::from(c) + i128::from(d) + e;
    Ok(format!("{sum} {f}"))
}

/// Unsigned integers.
#[tool]
async fn unsigned(g: u8, h: u16, i: u32, j: u64, k: u128, l: usize) -> Result<String, ToolError> {
    let sum = u128::from(g) + u128::from(h) + u128::from(i) + u128::from(j) + k;
    Ok(format!("{sum} {l}"))
}

///
///    Search files for a pattern.
///
///   Results are capped; narrow the glob if you hit the cap.
///
#[tool]
async fn search(
    /// Regular expression.
    ///   Matched line by line.
    pattern: std::string::String,
    /// Groups of alternative globs.
    glob_groups: Vec<Vec<String>>,
    line_numbers: Option<Vec<u32>>,
    /// Case-sensitive unless set.
    ignore_case: Option<bool>,
    mut limit: ::std::option::Option<usize>,
) -> Result<String, ToolError> {
    limit = limit.or(Some(10));
    Ok(format!(
        "{pattern} {glob_groups:?} {line_numbers:?} {ignore_case:?} {limit:?}"
    ))
}

/// Report the current time.
#[tool]
async fn clock() -> Result<String, ToolError> {
    Ok("noon".to_string())
}

/// Argument names that are keywords keep their plain spelling.
#[tool]
async fn r#match(r#type: String, _unused: Option<f64>) -> Result<String, ToolError> {
    Ok(r#type)
}

mod nested {
    use tools_macros::tool;
    use types::ToolError;

    /// Delete a file.
    #[tool]
    pub(crate) async fn file_delete(path: String) -> Result<String, ToolError> {
        Ok(path)
    }
}

/// Asserts the declaration serialises to exactly `expected`.
fn check(decl: FunctionDecl, expected: serde_json::Value) {
    assert_eq!(serde_json::to_value(decl).unwrap(), expected);
}

/// Drives a future that never waits, which is all these tool bodies do.
fn run<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the tool body was expected to finish without waiting"),
    }
}

#[test]
fn file_read_matches_the_spec_example() {
    check(
        __tool_function_decl_file_read(),
        json!({
            "name": "file_read",
            "description": "Read a UTF-8 text file from the workspace.",
            "parameters": {
                "type": "object",
                "properties": {
                    "path": {
                        "type": "string",
                        "description": "Workspace path such as /shared/notes.md"
                    },
                    "start_line": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "First line to return, 1-based"
                    },
                    "globs": {"type": "array", "items": {"type": "string"}}
                },
                "required": ["path", "globs"],
                "additionalProperties": false
            }
        }),
    );
}

#[test]
fn every_scalar_type_maps_to_its_schema() {
    let string = json!({"type": "string"});
    let number = json!({"type": "number"});
    check(
        __tool_function_decl_text_and_numbers(),
        json!({
            "name": "text_and_numbers",
            "description": "Strings, booleans and floating-point numbers.",
            "parameters": {
                "type": "object",
                "properties": {
                    "owned": string, "borrowed": string, "fixed": string,
                    "flag": {"type": "boolean", "description": "Whether to go on"},
                    "x": number, "y": number
                },
                "required": ["owned", "borrowed", "fixed", "flag", "x", "y"],
                "additionalProperties": false
            }
        }),
    );
    let integer = json!({"type": "integer"});
    check(
        __tool_function_decl_signed(),
        json!({
            "name": "signed",
            "description": "Signed integers.",
            "parameters": {
                "type": "object",
                "properties": {
                    "a": integer, "b": integer, "c": integer,
                    "d": integer, "e": integer, "f": integer
                },
                "required": ["a", "b", "c", "d", "e", "f"],
                "additionalProperties": false
            }
        }),
    );
    // Unsigned types tell the model that negative values are invalid.
    let natural = json!({"type": "integer", "minimum": 0});
    check(
        __tool_function_decl_unsigned(),
        json!({
            "name": "unsigned",
            "description": "Unsigned integers.",
            "parameters": {
                "type": "object",
                "properties": {
                    "g": natural, "h": natural, "i": natural,
                    "j": natural, "k": natural, "l": natural
                },
                "required": ["g", "h", "i", "j", "k", "l"],
                "additionalProperties": false
            }
        }),
    );
}

#[test]
fn nesting_multi_line_docs_and_qualified_paths() {
    check(
        __tool_function_decl_search(),
        json!({
            "name": "search",
            "description": "Search files for a pattern.\n\nResults are capped; narrow the glob if you hit the cap.",
            "parameters": {
                "type": "object",
                "properties": {
                    "pattern": {
                        "type": "string",
                        "description": "Regular expression.\nMatched line by line."
                    },
                    "glob_groups": {
                        "type": "array",
                        "description": "Groups of alternative globs.",
                        "items": {"type": "array", "items": {"type": "string"}}
                    },
                    "line_numbers": {
                        "type": "array",
                        "items": {"type": "integer", "minimum": 0}
                    },
                    "ignore_case": {
                        "type": "boolean",
                        "description": "Case-sensitive unless set."
                    },
                    "limit": {"type": "integer", "minimum": 0}
                },
                "required": ["pattern", "glob_groups"],
                "additionalProperties": false
            }
        }),
    );
}

#[test]
fn a_tool_without_arguments_still_has_an_object_schema() {
    check(
        __tool_function_decl_clock(),
        json!({
            "name": "clock",
            "description": "Report the current time.",
            "parameters": {
                "type": "object",
                "properties": {},
                "additionalProperties": false
            }
        }),
    );
}

#[test]
fn raw_identifiers_lose_their_prefix() {
    check(
        __tool_function_decl_match(),
        json!({
            "name": "match",
            "description": "Argument names that are keywords keep their plain spelling.",
            "parameters": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "_unused": {"type": "number"}
                },
                "required": ["type"],
                "additionalProperties": false
            }
        }),
    );
}

#[test]
fn the_declaration_has_the_function_visibility() {
    let decl = nested::__tool_function_decl_file_delete();
    assert_eq!(decl.name, "file_delete");
    assert_eq!(decl.description, "Delete a file.");
}

#[test]
fn annotated_functions_still_run() {
    assert_eq!(
        run(file_read(
            "/shared/a.md".into(),
            Some(3),
            vec!["*.md".into()]
        )),
        Ok("/shared/a.md:3:*.md".to_string())
    );
    assert_eq!(
        run(text_and_numbers("a".into(), "b", "c", true, 0.5, 0.25)),
        Ok("abc true 0.75".to_string())
    );
    assert_eq!(run(signed(1, 2, 3, 4, 5, 6)), Ok("15 6".to_string()));
    assert_eq!(run(unsigned(7, 8, 9, 10, 11, 12)), Ok("45 12".to_string()));
    assert_eq!(
        run(search("x".into(), vec![], None, Some(true), None)),
        Ok("x [] None Some(true) Some(10)".to_string())
    );
    assert_eq!(run(clock()), Ok("noon".to_string()));
    assert_eq!(run(r#match("t".into(), None)), Ok("t".to_string()));
    assert_eq!(
        run(nested::file_delete("/tmp/x".into())),
        Ok("/tmp/x".to_string())
    );
}
