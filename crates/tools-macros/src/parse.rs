//! Reads a `#[tool]` function: checks that its signature can be a tool,
//! takes the descriptions from its doc comments and maps every argument to
//! a schema. Every problem found is reported, not only the first.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::{Attribute, Expr, ExprLit, FnArg, ItemFn, Lit, Meta, Pat};

use crate::schema::ArgSchema;

/// A `#[tool]` function that passed every check.
pub(crate) struct ToolSpec {
    /// The name the model calls: the function name without any `r#`.
    pub(crate) name: String,
    pub(crate) description: String,
    /// In declaration order.
    pub(crate) args: Vec<ToolArg>,
}

pub(crate) struct ToolArg {
    /// The property name: the argument name without any `r#`.
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) schema: ArgSchema,
}

/// Checks `function` and describes it as a tool. Removes the doc attributes
/// of its parameters in place, whether or not the checks pass, because rustc
/// rejects doc comments on parameters and the function is re-emitted either
/// way.
pub(crate) fn analyse(attr: TokenStream, function: &mut ItemFn) -> syn::Result<ToolSpec> {
    let mut errors = Errors::default();
    if !attr.is_empty() {
        errors.push(syn::Error::new_spanned(attr, "#[tool] takes no arguments"));
    }

    let description = match doc_text(&function.attrs) {
        Ok(Some(text)) => text,
        Ok(None) => {
            errors.push(syn::Error::new_spanned(
                &function.sig.ident,
                "#[tool] functions need a doc comment: it is the description the model reads",
            ));
            String::new()
        }
        Err(error) => {
            errors.push(error);
            String::new()
        }
    };

    let sig = &mut function.sig;
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new_spanned(
            sig.fn_token,
            "#[tool] functions must be `async fn`",
        ));
    }
    let generic_tokens = if sig.generics.params.is_empty() {
        sig.generics
            .where_clause
            .as_ref()
            .map(ToTokens::to_token_stream)
    } else {
        Some(sig.generics.to_token_stream())
    };
    if let Some(tokens) = generic_tokens {
        errors.push(syn::Error::new_spanned(
            tokens,
            "#[tool] functions cannot be generic; use concrete argument types",
        ));
    }

    let mut args = Vec::new();
    for input in &mut sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                receiver.attrs.retain(|attr| !is_doc(attr));
                errors.push(syn::Error::new_spanned(
                    receiver,
                    "#[tool] cannot be used on methods (found a `self` receiver); \
                     write a free `async fn`",
                ));
            }
            FnArg::Typed(arg) => {
                let description = doc_text(&arg.attrs).unwrap_or_else(|error| {
                    errors.push(error);
                    None
                });
                arg.attrs.retain(|attr| !is_doc(attr));
                let name = match &*arg.pat {
                    Pat::Ident(ident) if ident.by_ref.is_none() && ident.subpat.is_none() => {
                        Some(ident.ident.unraw().to_string())
                    }
                    pattern => {
                        errors.push(syn::Error::new_spanned(
                            pattern,
                            "#[tool] arguments must be plain identifiers",
                        ));
                        None
                    }
                };
                let schema = match ArgSchema::from_type(&arg.ty) {
                    Ok(schema) => Some(schema),
                    Err(error) => {
                        errors.push(error);
                        None
                    }
                };
                if let (Some(name), Some(schema)) = (name, schema) {
                    args.push(ToolArg {
                        name,
                        description,
                        schema,
                    });
                }
            }
        }
    }

    errors.finish(ToolSpec {
        name: function.sig.ident.unraw().to_string(),
        description,
        args,
    })
}

/// The text of the doc comments in `attrs`: every line trimmed, leading and
/// trailing blank lines dropped; `None` when that leaves nothing.
fn doc_text(attrs: &[Attribute]) -> syn::Result<Option<String>> {
    let mut raw = Vec::new();
    for attr in attrs.iter().filter(|attr| is_doc(attr)) {
        // `#[doc(hidden)]` and `#[doc(alias = "…")]` are lists, not text.
        let Meta::NameValue(doc) = &attr.meta else {
            continue;
        };
        match &doc.value {
            Expr::Lit(ExprLit {
                lit: Lit::Str(text),
                ..
            }) => raw.push(text.value()),
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "#[tool] can only read doc comments written as `///` or string literals, \
                     because it needs the text at compile time",
                ));
            }
        }
    }
    let joined = raw.join("\n");
    let lines: Vec<&str> = joined.lines().map(str::trim).collect();
    let Some(first) = lines.iter().position(|line| !line.is_empty()) else {
        return Ok(None);
    };
    let last = lines
        .iter()
        .rposition(|line| !line.is_empty())
        .unwrap_or(first);
    Ok(Some(lines[first..=last].join("\n")))
}

fn is_doc(attr: &Attribute) -> bool {
    attr.path().is_ident("doc")
}

/// Collects errors so that one build reports every problem of a function.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }
}
