//! Maps Rust argument types to JSON Schema nodes and emits them as
//! `::types::JsonSchema` expressions.
//!
//! Types are matched on the last path segment, so `std::string::String` and
//! `String` are the same; a type alias or a custom struct is not recognised
//! and is reported as unsupported rather than guessed at.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::{GenericArgument, PathArguments, Type};

/// The JSON Schema node for one argument type.
pub(crate) enum Schema {
    String,
    Boolean,
    /// Unsigned Rust integers also declare `minimum: 0`.
    Integer {
        unsigned: bool,
    },
    Number,
    Array(Box<Schema>),
}

/// An argument's schema and whether the model may leave the argument out.
pub(crate) struct ArgSchema {
    pub(crate) schema: Schema,
    /// `true` for `Option<T>`: the argument is not listed in `required`.
    pub(crate) optional: bool,
}

impl ArgSchema {
    /// Maps an argument type; `Option` is only accepted around the whole type.
    pub(crate) fn from_type(ty: &Type) -> syn::Result<Self> {
        match single_type_arg(ty, "Option") {
            Some(inner) => Ok(Self {
                schema: Schema::from_type(inner, ty)?,
                optional: true,
            }),
            None => Ok(Self {
                schema: Schema::from_type(ty, ty)?,
                optional: false,
            }),
        }
    }
}

impl Schema {
    /// Maps `ty`, a part of the argument type `whole` (named in the error
    /// when an `Option` is nested inside it).
    fn from_type(ty: &Type, whole: &Type) -> syn::Result<Self> {
        match ty {
            // `Group` wraps types passed through `macro_rules!` fragments.
            Type::Group(group) => Self::from_type(&group.elem, whole),
            Type::Paren(paren) => Self::from_type(&paren.elem, whole),
            Type::Reference(reference)
                if reference.mutability.is_none()
                    && plain_name(&reference.elem).as_deref() == Some("str") =>
            {
                Ok(Self::String)
            }
            Type::Path(_) => {
                if let Some(item) = single_type_arg(ty, "Vec") {
                    return Ok(Self::Array(Box::new(Self::from_type(item, whole)?)));
                }
                if last_segment(ty).is_some_and(|segment| segment.ident == "Option") {
                    return Err(unsupported(
                        whole,
                        "; `Option` is only allowed around the whole argument type",
                    ));
                }
                match plain_name(ty).as_deref() {
                    Some("String") => Ok(Self::String),
                    Some("bool") => Ok(Self::Boolean),
                    Some("i8" | "i16" | "i32" | "i64" | "i128" | "isize") => {
                        Ok(Self::Integer { unsigned: false })
                    }
                    Some("u8" | "u16" | "u32" | "u64" | "u128" | "usize") => {
                        Ok(Self::Integer { unsigned: true })
                    }
                    Some("f32" | "f64") => Ok(Self::Number),
                    _ => Err(unsupported(ty, "")),
                }
            }
            _ => Err(unsupported(ty, "")),
        }
    }
}

impl ToTokens for Schema {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        tokens.extend(match self {
            Self::String => quote!(::types::JsonSchema::string()),
            Self::Boolean => quote!(::types::JsonSchema::boolean()),
            Self::Integer { unsigned: false } => quote!(::types::JsonSchema::integer()),
            Self::Integer { unsigned: true } => {
                quote!(::types::JsonSchema::integer().with_minimum(0))
            }
            Self::Number => quote!(::types::JsonSchema::number()),
            Self::Array(items) => quote!(::types::JsonSchema::array(#items)),
        });
    }
}

/// The last path segment of `ty`, if `ty` is a path without a `<T as Trait>` prefix.
fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(path) if path.qself.is_none() => path.path.segments.last(),
        _ => None,
    }
}

/// The name of a path type without generic arguments, such as `u8` or `String`.
fn plain_name(ty: &Type) -> Option<String> {
    let segment = last_segment(ty)?;
    matches!(segment.arguments, PathArguments::None).then(|| segment.ident.to_string())
}

/// `T` when `ty` is `name<T>` (such as `Vec<T>`), matched on the last segment.
fn single_type_arg<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    let segment = last_segment(ty)?;
    if segment.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(generic) = &segment.arguments else {
        return None;
    };
    match generic.args.iter().collect::<Vec<_>>().as_slice() {
        [GenericArgument::Type(inner)] => Some(inner),
        _ => None,
    }
}

fn unsupported(ty: &Type, hint: &str) -> syn::Error {
    syn::Error::new_spanned(
        ty,
        format!(
            "unsupported argument type `{}` for #[tool]: use String, &str, bool, an integer, \
             f32/f64, Option<T> or Vec<T>{hint}",
            render(ty.to_token_stream())
        ),
    )
}

/// Writes a type the way a person would (`HashMap<String, u8>`), not with
/// the spaces `TokenStream::to_string` puts between every token.
fn render(tokens: TokenStream) -> String {
    let mut out = String::new();
    render_into(tokens, &mut out);
    out
}

fn render_into(tokens: TokenStream, out: &mut String) {
    let ends_in_word = |out: &String| out.ends_with(|c: char| c.is_alphanumeric() || c == '_');
    for token in tokens {
        match token {
            TokenTree::Ident(ident) => {
                if ends_in_word(out) {
                    out.push(' ');
                }
                out.push_str(&ident.to_string());
            }
            TokenTree::Literal(literal) => {
                if ends_in_word(out) {
                    out.push(' ');
                }
                out.push_str(&literal.to_string());
            }
            TokenTree::Punct(punct) => match punct.as_char() {
                c @ (',' | ';') => {
                    out.push(c);
                    out.push(' ');
                }
                c @ ('=' | '+') => {
                    out.push(' ');
                    out.push(c);
                    out.push(' ');
                }
                '-' => out.push_str(" -"),
                '>' if out.ends_with('-') => out.push_str("> "),
                c => out.push(c),
            },
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::None => ("", ""),
                };
                out.push_str(open);
                render_into(group.stream(), out);
                let trimmed = out.trim_end().len();
                out.truncate(trimmed);
                out.push_str(close);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(ty: &str, expected: &str) {
        let ty: Type = syn::parse_str(ty).unwrap();
        assert_eq!(render(ty.to_token_stream()), expected);
    }

    #[test]
    fn types_render_as_written() {
        check("HashMap<String,String>", "HashMap<String, String>");
        check("& 'a mut  str", "&'a mut str");
        check("[u8;4]", "[u8; 4]");
        check("(u8,)", "(u8,)");
        check("Box<dyn Fn(u8)->u8+Send>", "Box<dyn Fn(u8) -> u8 + Send>");
        check("impl Iterator<Item=u8>", "impl Iterator<Item = u8>");
        check("::std::vec::Vec<Vec<u8>>", "::std::vec::Vec<Vec<u8>>");
    }
}
