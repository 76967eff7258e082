//! `lease shell` in a real terminal (a pseudo-terminal): a TTY exec, keys
//! passed through raw (Ctrl-C reaches the container, not us), the window
//! size passed along and followed on resize, the exit code kept, and the
//! terminal restored afterwards.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{Screen, TestNamespace, stdout_of};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};

fn size(rows: u16, cols: u16) -> PtySize {
    PtySize {
        rows,
        cols,
        pixel_width: 0,
        pixel_height: 0,
    }
}

#[test]
fn interactive_shell_in_a_terminal() {
    let Some(ns) = TestNamespace::new() else {
        return;
    };
    let id = stdout_of(ns.lease().args(["up", "busybox", "--for", "10m"]))
        .trim()
        .to_owned();

    let pty = native_pty_system();
    let pair = pty.openpty(size(30, 100)).expect("open a pty");
    // A host shell runs `lease shell`, then shows our exit code and the
    // terminal's settings once we are gone.
    let script = format!(
        "'{}' --store '{}' --namespace '{}' --owner tester --catalog '{}' shell {}; \
         echo \"rc=$?\"; stty -a",
        common::bin(),
        ns.redis,
        ns.name,
        common::catalog().display(),
        &id["container-".len().."container-".len() + 12],
    );
    let mut command = CommandBuilder::new("/bin/sh");
    command.args(["-c", &script]);
    for name in common::LEASE_ENV {
        command.env_remove(name);
    }
    let mut child = pair.slave.spawn_command(command).expect("spawn in the pty");
    drop(pair.slave);
    let screen = Screen::collect(pair.master.try_clone_reader().expect("reader"));
    let mut writer = pair.master.take_writer().expect("writer");
    let mut keys = |bytes: &[u8]| {
        writer.write_all(bytes).expect("type");
        writer.flush().expect("flush");
    };
    let mut type_line = |line: &str| keys(format!("{line}\r").as_bytes());
    let limit = Duration::from_secs(20);

    // busybox sh's root prompt.
    let mut at = screen.wait_for("# ", 0, limit);
    // The exec got our terminal's size…
    type_line("stty size");
    at = screen.wait_for("30 100", at, limit);
    // …and follows a resize (SIGWINCH here, a resize call to Docker).
    pair.master.resize(size(40, 120)).expect("resize");
    std::thread::sleep(Duration::from_millis(500));
    type_line("stty size");
    at = screen.wait_for("40 120", at, limit);
    // Ctrl-C interrupts the command in the container, not `lease`.
    type_line("sleep 30");
    std::thread::sleep(Duration::from_millis(500));
    type_line("\u{3}");
    type_line("echo after-$((40+2))");
    at = screen.wait_for("after-42", at, limit);
    // The shell's exit code is ours.
    type_line("exit 7");
    at = screen.wait_for("rc=7", at, limit);
    // Raw mode was undone: the host terminal echoes and reads lines again.
    let settings_at = screen.wait_for("speed", at, limit);
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "the host shell did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(200));
    let settings = screen.text()[settings_at..].to_owned();
    let words: Vec<&str> = settings
        .split_whitespace()
        .map(|w| w.trim_end_matches(';'))
        .collect();
    for mode in ["icanon", "echo", "isig", "opost"] {
        assert!(
            words.contains(&mode),
            "`{mode}` is not back on:\n{settings}"
        );
    }
    ns.lease().args(["rm", &id]).assert().success();
}
