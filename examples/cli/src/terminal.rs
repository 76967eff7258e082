//! The local terminal: whether there is one, its size, and raw mode that is
//! always undone.

use std::io::IsTerminal;

use crate::error::CliError;

/// Whether stdin is a terminal.
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Whether stdout is a terminal.
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// The terminal's size as (columns, rows), if there is a terminal.
pub fn size() -> Option<(u16, u16)> {
    crossterm::terminal::size()
        .ok()
        .filter(|&(columns, rows)| columns > 0 && rows > 0)
}

/// Raw mode while it lives: keys go straight to the container (Ctrl-C
/// included), nothing is echoed or line-buffered locally. Dropping it — on
/// return, on error, on panic — restores the terminal.
#[derive(Debug)]
pub struct RawMode {
    _private: (),
}

impl RawMode {
    /// Switches the terminal to raw mode.
    pub fn enable() -> Result<Self, CliError> {
        crossterm::terminal::enable_raw_mode()
            .map_err(|e| CliError::io("cannot put the terminal in raw mode", e))?;
        Ok(RawMode { _private: () })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Err(error) = crossterm::terminal::disable_raw_mode() {
            crate::output::note(&format!(
                "lease: cannot restore the terminal: {error} (try `reset`)"
            ));
        }
    }
}
