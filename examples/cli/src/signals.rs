//! Ctrl-C and termination signals as futures.

/// Resolves on SIGINT (Ctrl-C), SIGTERM or SIGHUP.
pub async fn interrupted() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let other = |kind: SignalKind| async move {
            match signal(kind) {
                Ok(mut stream) => {
                    stream.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = interrupt => {}
            () = other(SignalKind::terminate()) => {}
            () = other(SignalKind::hangup()) => {}
        }
    }
    #[cfg(not(unix))]
    interrupt.await;
}

/// Resolves on SIGTERM or SIGHUP (never elsewhere than on Unix).
pub async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let wait = |kind: SignalKind| async move {
            match signal(kind) {
                Ok(mut stream) => {
                    stream.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = wait(SignalKind::terminate()) => {}
            () = wait(SignalKind::hangup()) => {}
        }
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await;
}

/// Ctrl-C presses (SIGINT) as a stream, once asked for: the process is no
/// longer killed by them.
pub struct Interrupts {
    #[cfg(unix)]
    stream: Option<tokio::signal::unix::Signal>,
}

impl Interrupts {
    /// Starts catching SIGINT.
    pub fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Interrupts {
                stream: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Interrupts {}
    }

    /// The next Ctrl-C.
    pub async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(stream) = &mut self.stream {
            if stream.recv().await.is_some() {
                return;
            }
            self.stream = None;
        }
        std::future::pending::<()>().await;
    }
}

/// Terminal size changes (SIGWINCH); never fires where there are none.
pub struct WindowChanges {
    #[cfg(unix)]
    stream: Option<tokio::signal::unix::Signal>,
}

impl WindowChanges {
    /// Starts listening.
    pub fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            WindowChanges {
                stream: signal(SignalKind::window_change()).ok(),
            }
        }
        #[cfg(not(unix))]
        WindowChanges {}
    }

    /// The next change.
    pub async fn changed(&mut self) {
        #[cfg(unix)]
        if let Some(stream) = &mut self.stream {
            if stream.recv().await.is_some() {
                return;
            }
            self.stream = None;
        }
        std::future::pending::<()>().await;
    }
}
