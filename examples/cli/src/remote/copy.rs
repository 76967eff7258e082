//! `lease cp`: copying files and directories into and out of a lease,
//! through the server (streaming both ways; see `lease_client::files`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::error::CliError;
use crate::lookup::Scope;
use crate::output::note;
use crate::remote::Remote;
use crate::remote::lookup::find;

/// `lease cp`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// What to copy: `ID:/abs/path` (in a lease) or a local path.
    pub source: String,
    /// Where to: a local path, or `ID:/abs/path` (in a lease). An existing
    /// directory takes the copy inside it; anything else is its new name.
    pub destination: String,
}

/// `ID:/path` split, when `text` names a path in a lease.
fn remote_part(text: &str) -> Option<(&str, &str)> {
    let (id, path) = text.split_once(':')?;
    (!id.is_empty() && !id.contains('/') && path.starts_with('/')).then_some((id, path))
}

/// `lease cp SRC DST` (remote mode).
pub async fn cp(remote: &Remote, args: CpArgs) -> Result<ExitCode, CliError> {
    match (remote_part(&args.source), remote_part(&args.destination)) {
        (Some((id, path)), None) => {
            let lease = find(remote, id, Scope::Active).await?;
            let local = PathBuf::from(&args.destination);
            let landed = remote
                .client
                .copy_out(&lease.id, path, &local)
                .await
                .map_err(|e| remote.error(e))?;
            note(&format!("copied {path} to {}", landed.display()));
        }
        (None, Some((id, path))) => {
            let lease = find(remote, id, Scope::Active).await?;
            let local = PathBuf::from(&args.source);
            let bytes = remote
                .client
                .copy_in(&lease.id, &local, path)
                .await
                .map_err(|e| remote.error(e))?;
            note(&format!(
                "copied {} into {}:{path} ({bytes} bytes sent)",
                local.display(),
                lease.id
            ));
        }
        (Some(_), Some(_)) => {
            return Err(CliError::Usage(
                "lease cp copies between this machine and a lease, not between two leases"
                    .to_owned(),
            ));
        }
        (None, None) => {
            return Err(CliError::Usage(
                "lease cp needs one side in a lease: ID:/absolute/path".to_owned(),
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::remote_part;

    #[test]
    fn lease_paths_are_told_from_local_ones() {
        assert_eq!(remote_part("abc:/tmp/x"), Some(("abc", "/tmp/x")));
        assert_eq!(remote_part("./a:/b"), None);
        assert_eq!(remote_part("abc:tmp"), None);
        assert_eq!(remote_part("/tmp/x"), None);
        assert_eq!(remote_part(":/x"), None);
    }
}
