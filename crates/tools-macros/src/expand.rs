//! Emits the checked function and its `__tool_function_decl_<name>` sibling.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ItemFn;

use crate::parse::{self, ToolSpec};

/// The whole expansion of `#[tool]`. On errors the function is still
/// emitted (without parameter docs) next to the errors, so the only
/// messages the author sees are ours, not follow-on "cannot find function"
/// errors from its callers.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(error) => {
            let error = syn::Error::new(
                error.span(),
                format!("#[tool] can only be applied to an `async fn` ({error})"),
            )
            .to_compile_error();
            return quote!(#item #error);
        }
    };
    match parse::analyse(attr, &mut function) {
        Ok(spec) => {
            let decl = decl_fn(&function, &spec);
            quote!(#function #decl)
        }
        Err(errors) => {
            let errors = errors.to_compile_error();
            quote!(#function #errors)
        }
    }
}

/// `fn __tool_function_decl_<name>() -> ::types::FunctionDecl`, with the
/// function's visibility and `#[cfg]`s so both exist in the same builds.
fn decl_fn(function: &ItemFn, spec: &ToolSpec) -> TokenStream {
    let vis = &function.vis;
    let cfgs = function
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg"));
    // `format_ident!` drops the `r#` of a raw identifier.
    let decl_name = format_ident!(
        "__tool_function_decl_{}",
        function.sig.ident,
        span = function.sig.ident.span()
    );
    let name = &spec.name;
    let description = &spec.description;
    let properties = spec.args.iter().map(|arg| {
        let name = &arg.name;
        let schema = &arg.schema.schema;
        let description = arg
            .description
            .as_ref()
            .map(|text| quote!(.with_description(#text)));
        quote!((::std::string::String::from(#name), #schema #description))
    });
    let required = spec
        .args
        .iter()
        .filter(|arg| !arg.schema.optional)
        .map(|arg| &arg.name);
    quote! {
        #(#cfgs)*
        #[doc(hidden)]
        #vis fn #decl_name() -> ::types::FunctionDecl {
            ::types::FunctionDecl {
                name: ::std::string::String::from(#name),
                description: ::std::string::String::from(#description),
                parameters: ::types::JsonSchema::object(
                    ::std::collections::BTreeMap::<
                        ::std::string::String,
                        ::types::JsonSchema,
                    >::from([#(#properties),*]),
                    ::std::vec![#(::std::string::String::from(#required)),*],
                ),
            }
        }
    }
}
