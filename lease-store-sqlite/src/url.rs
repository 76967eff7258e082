//! `sqlite:` store URLs and the default database location: the one parser
//! that lease-server and the `lease` command share.
//!
//! | URL | file |
//! |---|---|
//! | `sqlite:///var/lib/containerlease/leases.db` | `/var/lib/containerlease/leases.db` (absolute) |
//! | `sqlite://leases.db`, `sqlite:leases.db` | `leases.db` in the working directory |
//! | `sqlite://state/leases.db` | `state/leases.db` under the working directory |
//! | `…?synchronous=normal` | the same file with [`Synchronous::Normal`] |

use std::path::{Path, PathBuf};

use crate::config::{SqliteStoreConfig, Synchronous};

/// What every SQLite store URL starts with.
pub const URL_SCHEME: &str = "sqlite:";

/// The folder of the database files inside the state directory.
const DEFAULT_DIR: &str = "containerlease";

/// The default file's name for `namespace`: `leases.db` for the namespace
/// `default`, `leases-<namespace>.db` for any other, so that deployments of
/// different namespaces on one host never share a file (a file belongs to
/// one namespace: [`crate::SqliteStoreConfig::namespace`]).
fn default_file(namespace: &str) -> String {
    if namespace == "default" {
        "leases.db".to_owned()
    } else {
        format!("leases-{namespace}.db")
    }
}

/// Whether `text` is meant as a SQLite store URL (it may still be invalid).
pub fn is_store_url(text: &str) -> bool {
    text.trim_start().starts_with(URL_SCHEME)
}

/// Why a `sqlite:` URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// It does not start with `sqlite:`.
    #[error("`{0}` is not a sqlite: URL")]
    NotSqlite(String),
    /// It names no file.
    #[error(
        "`{0}` names no database file (sqlite:///absolute/path.db or sqlite://relative/path.db)"
    )]
    NoPath(String),
    /// A query parameter that is not known or has a bad value.
    #[error("`{parameter}` in `{url}`: only synchronous=full or synchronous=normal is understood")]
    Parameter {
        /// The URL.
        url: String,
        /// The parameter as written.
        parameter: String,
    },
}

/// The settings a `sqlite:` URL names (see the module's table); everything
/// else is [`SqliteStoreConfig::new`]'s default.
pub fn config_from_url(url: &str) -> Result<SqliteStoreConfig, UrlError> {
    let text = url.trim();
    let rest = text
        .strip_prefix(URL_SCHEME)
        .ok_or_else(|| UrlError::NotSqlite(text.to_owned()))?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path.ends_with('/') {
        return Err(UrlError::NoPath(text.to_owned()));
    }
    let mut config = SqliteStoreConfig::new(path);
    for parameter in query.split('&').filter(|part| !part.is_empty()) {
        config = match parameter.to_ascii_lowercase().as_str() {
            "synchronous=full" => config.synchronous(Synchronous::Full),
            "synchronous=normal" => config.synchronous(Synchronous::Normal),
            _ => {
                return Err(UrlError::Parameter {
                    url: text.to_owned(),
                    parameter: parameter.to_owned(),
                });
            }
        };
    }
    Ok(config)
}

/// The URL of a database file (`sqlite:///abs` for an absolute path).
pub fn url_for(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Where the database of `namespace` lives unless told otherwise:
/// `$XDG_STATE_HOME/containerlease/leases.db`, else
/// `$HOME/.local/state/containerlease/leases.db` (`leases-<namespace>.db`
/// for a namespace other than `default`); `None` without either variable.
pub fn default_path(namespace: &str) -> Option<PathBuf> {
    default_path_from(
        std::env::var_os("XDG_STATE_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
        namespace,
    )
}

fn default_path_from(
    xdg_state: Option<PathBuf>,
    home: Option<PathBuf>,
    namespace: &str,
) -> Option<PathBuf> {
    // The XDG spec says a relative value is invalid and must be ignored.
    let state = xdg_state.filter(|dir| dir.is_absolute()).or_else(|| {
        home.filter(|home| home.is_absolute())
            .map(|home| home.join(".local/state"))
    })?;
    Some(state.join(DEFAULT_DIR).join(default_file(namespace)))
}

/// The store URL used when none is given: the [`default_path`] of
/// `namespace` as a URL, or a file in the working directory without a home.
pub fn default_store_url(namespace: &str) -> String {
    match default_path(namespace) {
        Some(path) => url_for(&path),
        None => format!("sqlite://{}", default_file(namespace)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_absolute_and_relative_forms() {
        let cases = [
            ("sqlite:///var/lib/cl/leases.db", "/var/lib/cl/leases.db"),
            ("sqlite://leases.db", "leases.db"),
            ("sqlite:leases.db", "leases.db"),
            (" sqlite://state/leases.db ", "state/leases.db"),
        ];
        for (url, path) in cases {
            let config = config_from_url(url).expect(url);
            assert_eq!(config.path(), Path::new(path), "{url}");
            assert_eq!(config.synchronous, Synchronous::Full, "{url}");
        }
        assert!(is_store_url("sqlite:x.db"));
        assert!(!is_store_url("redis://h/0"));
        assert!(!is_store_url("memory"));
    }

    #[test]
    fn reads_synchronous() {
        let config = config_from_url("sqlite:///d/l.db?synchronous=NORMAL").expect("valid");
        assert_eq!(config.synchronous, Synchronous::Normal);
        assert_eq!(config.path(), Path::new("/d/l.db"));
        let config = config_from_url("sqlite:///d/l.db?synchronous=full").expect("valid");
        assert_eq!(config.synchronous, Synchronous::Full);
    }

    #[test]
    fn refuses_what_names_no_file() {
        for url in ["sqlite://", "sqlite:", "sqlite:///", "sqlite://dir/"] {
            assert!(
                matches!(config_from_url(url), Err(UrlError::NoPath(_))),
                "{url}"
            );
        }
        assert!(matches!(
            config_from_url("sqlite:///x.db?journal=off"),
            Err(UrlError::Parameter { .. })
        ));
        assert!(matches!(
            config_from_url("redis://x"),
            Err(UrlError::NotSqlite(_))
        ));
    }

    #[test]
    fn default_location_follows_xdg_then_home() {
        let xdg = default_path_from(Some("/x/state".into()), Some("/home/ada".into()), "default");
        assert_eq!(
            xdg,
            Some(PathBuf::from("/x/state/containerlease/leases.db"))
        );
        let home = default_path_from(None, Some("/home/ada".into()), "default");
        assert_eq!(
            home,
            Some(PathBuf::from(
                "/home/ada/.local/state/containerlease/leases.db"
            ))
        );
        let relative_xdg =
            default_path_from(Some("state".into()), Some("/home/ada".into()), "default");
        assert_eq!(relative_xdg, home, "a relative XDG_STATE_HOME is ignored");
        assert_eq!(default_path_from(None, None, "default"), None);
        assert_eq!(
            default_path_from(None, Some("/home/ada".into()), "team-a"),
            Some(PathBuf::from(
                "/home/ada/.local/state/containerlease/leases-team-a.db"
            )),
            "another namespace gets its own file"
        );
        let url = url_for(Path::new("/home/ada/.local/state/containerlease/leases.db"));
        assert_eq!(
            url,
            "sqlite:///home/ada/.local/state/containerlease/leases.db"
        );
        assert_eq!(
            config_from_url(&url).expect("round trip").path(),
            Path::new("/home/ada/.local/state/containerlease/leases.db")
        );
    }
}
