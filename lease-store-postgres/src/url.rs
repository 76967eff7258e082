//! Store URLs: which specs name a PostgreSQL store, and how to print one
//! without its password.

/// The URL schemes of a PostgreSQL store.
pub const URL_SCHEMES: [&str; 2] = ["postgres://", "postgresql://"];

/// Whether `spec` names a PostgreSQL store (`postgres://…` or
/// `postgresql://…`, scheme in any case).
pub fn is_store_url(spec: &str) -> bool {
    URL_SCHEMES.iter().any(|scheme| {
        spec.get(..scheme.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(scheme))
    })
}

/// `url` with the password of its user info replaced by `***`, for logs
/// and messages; also a `password=` query parameter. Text that is not a
/// URL comes back unchanged.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|at| at + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = url[..scheme_end].to_owned();
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..colon]);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    out.push_str(&redact_query(&rest[authority_end..]));
    out
}

/// A path and query with any `password=` parameter's value hidden.
fn redact_query(tail: &str) -> String {
    let Some(question) = tail.find('?') else {
        return tail.to_owned();
    };
    let (path, query) = tail.split_at(question + 1);
    let (query, fragment) = match query.find('#') {
        Some(hash) => query.split_at(hash),
        None => (query, ""),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}{}{fragment}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_both_schemes() {
        assert!(is_store_url("postgres://db/leases"));
        assert!(is_store_url("postgresql://u@db:5432/leases"));
        assert!(is_store_url("POSTGRES://db"));
        assert!(!is_store_url("redis://db"));
        assert!(!is_store_url("sqlite:///x.db"));
        assert!(!is_store_url("postgres:/x"));
        assert!(!is_store_url("pg"));
        assert!(!is_store_url("é"));
    }

    #[test]
    fn hides_passwords() {
        assert_eq!(
            redact("postgres://ada:s3cr:et@db:5432/leases"),
            "postgres://ada:***@db:5432/leases"
        );
        assert_eq!(
            redact("postgresql://ada@db/leases"),
            "postgresql://ada@db/leases"
        );
        assert_eq!(redact("postgres://db"), "postgres://db");
        assert_eq!(
            redact("postgres://db/x?user=a&password=p&sslmode=require#f"),
            "postgres://db/x?user=a&password=***&sslmode=require#f"
        );
        assert_eq!(redact("p@ss:word"), "p@ss:word");
        assert_eq!(
            redact("postgres://a:p@ss@db/x"),
            "postgres://a:***@db/x",
            "the last @ ends the user info"
        );
    }
}
