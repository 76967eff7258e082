//! `lease token new`: a lease-server API token and its tokens-file entry,
//! minted by lease-http's own code.

use std::process::ExitCode;

use serde::Serialize;

use crate::cli::{Output, TokenNewArgs};
use crate::context::Context;
use crate::error::CliError;
use crate::output::{print, print_json};

/// A minted token, as JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenJson<'a> {
    owner: &'a str,
    admin: bool,
    token: &'a str,
    toml_entry: &'a str,
}

/// `lease token new`.
pub fn new(context: &Context, args: TokenNewArgs) -> Result<ExitCode, CliError> {
    // Explicit only: a token minted for $USER by accident is worse than an error.
    let Some(owner) = context.args.owner.as_deref() else {
        return Err(CliError::Usage(
            "`lease token new` needs --owner NAME (the owner the token acts as)".to_owned(),
        ));
    };
    let minted = lease_http::auth::mint_token(owner, args.admin)
        .map_err(|e| CliError::Usage(format!("--owner: {e}")))?;
    match context.output() {
        Output::Json => print_json(&TokenJson {
            owner: owner.trim(),
            admin: args.admin,
            token: &minted.token,
            toml_entry: &minted.toml_entry,
        })?,
        // The same text as `lease-server token new`.
        Output::Table => print(&format!(
            "token: {}\n\n# Add this entry to the tokens file (--tokens); the token itself is not stored.\n{}",
            minted.token,
            minted.toml_entry.trim_end()
        ))?,
    }
    Ok(ExitCode::SUCCESS)
}
