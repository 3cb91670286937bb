//! Compile errors of `#[tool]`, each checked against its committed `.stderr`.
//! Regenerate with `TRYBUILD=overwrite cargo test -p tools-macros --test ui`
//! and read the diff: the message and the span are the point of each case.

#[test]
fn compile_errors() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
