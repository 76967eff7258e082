//! Opening a URL in the person's browser: the `BROWSER` environment
//! variable if set (a `:`-separated list of commands, tried in order; `%s`
//! stands for the URL, else it is appended), else `open` on macOS and
//! `xdg-open` where there is a display.

use std::process::{Command, Stdio};

/// The environment variable naming the browser command.
pub const BROWSER_VAR: &str = "BROWSER";

/// Whether a browser can be opened here at all: BROWSER is set, or this
/// is macOS, or there is a graphical display.
pub fn available() -> bool {
    browser_var().is_some()
        || cfg!(target_os = "macos")
        || ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}

fn browser_var() -> Option<String> {
    std::env::var(BROWSER_VAR)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// The commands to try for `url`, each as program and arguments.
fn commands(browser: Option<&str>, url: &str) -> Vec<Vec<String>> {
    match browser {
        Some(list) => list
            .split(':')
            .filter_map(|command| command_line(command, url))
            .collect(),
        None if cfg!(target_os = "macos") => vec![vec!["open".to_owned(), url.to_owned()]],
        None => vec![vec!["xdg-open".to_owned(), url.to_owned()]],
    }
}

/// One BROWSER entry as program and arguments, with `%s` replaced by the
/// URL (appended when absent). No shell is involved: the URL stays one
/// argument whatever it holds.
fn command_line(command: &str, url: &str) -> Option<Vec<String>> {
    let words: Vec<&str> = command.split_whitespace().collect();
    if words.is_empty() {
        return None;
    }
    let mut line: Vec<String> = words
        .iter()
        .map(|word| word.replace("%s", url).replace("%%", "%"))
        .collect();
    if !words.iter().any(|word| word.contains("%s")) {
        line.push(url.to_owned());
    }
    Some(line)
}

/// Starts the browser on `url`, without waiting for it. `false` when no
/// command could be started (the caller has printed the URL anyway).
pub fn open(url: &str) -> bool {
    for line in commands(browser_var().as_deref(), url) {
        let Some((program, args)) = line.split_first() else {
            continue;
        };
        let spawned = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match spawned {
            Ok(mut child) => {
                // Reaped in the background: a browser may outlive us.
                std::thread::spawn(move || child.wait());
                tracing::debug!(program = %program, "browser started");
                return true;
            }
            Err(error) => tracing::debug!(program = %program, %error, "cannot start the browser"),
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://h/auth/cli?port=1&state=a b;$(x)";

    #[test]
    fn browser_entries_take_the_url_as_one_argument() {
        assert_eq!(
            commands(Some("firefox"), URL),
            vec![vec!["firefox".to_owned(), URL.to_owned()]]
        );
        assert_eq!(
            commands(Some("chromium --new-window %s:lynx"), URL),
            vec![
                vec![
                    "chromium".to_owned(),
                    "--new-window".to_owned(),
                    URL.to_owned()
                ],
                vec!["lynx".to_owned(), URL.to_owned()],
            ]
        );
        assert!(commands(Some(" : "), URL).is_empty());
    }

    #[test]
    fn without_browser_the_platform_opener() {
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else {
            "xdg-open"
        };
        assert_eq!(
            commands(None, URL),
            vec![vec![opener.to_owned(), URL.to_owned()]]
        );
    }
}
