//! Arguments of `#[growable(...)]`.

use syn::parse::{Parse, ParseStream};
use syn::{LitInt, Token};

/// The largest `frame` accepted: the largest segment the runtime's arena
/// can hand out.
const MAX_FRAME: usize = 1 << 40;

/// `#[growable]` or `#[growable(frame = N)]`.
#[derive(Clone, Copy, Default)]
pub struct Args {
    /// Bytes of large locals in the body, if stated.
    pub frame: Option<usize>,
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Args> {
        let mut args = Args::default();
        while !input.is_empty() {
            let key: syn::Ident = input.parse()?;
            if key != "frame" {
                return Err(syn::Error::new(
                    key.span(),
                    format!("unknown argument `{key}`: #[growable] takes only `frame = <bytes>`"),
                ));
            }
            if args.frame.is_some() {
                return Err(syn::Error::new(key.span(), "`frame` given twice"));
            }
            input.parse::<Token![=]>()?;
            let value: LitInt = input.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "`frame` takes an integer: the bytes the body needs",
                )
            })?;
            let frame: usize = value.base10_parse()?;
            if frame > MAX_FRAME {
                return Err(syn::Error::new(
                    value.span(),
                    "`frame` is larger than any stack growstack can give (1 TiB)",
                ));
            }
            args.frame = Some(frame);
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    }
}
