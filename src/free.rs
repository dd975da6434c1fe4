//! Freeing at the end of a run: the build's large structures (the state's maps, the parse cache)
//! are dropped on a thread of their own, so that the run does not spend its last tenth of a second
//! freeing, one allocation at a time, memory the process hands back whole when it exits.
//!
//! In the command-line tool the process usually exits before that thread is done, so the work is never
//! done at all (clang's `-disable-free` does the same for its syntax trees); a caller that goes on
//! running, such as a test, has everything freed all the same, on that thread.
//!
//! Only plain data goes there: nothing that holds a git repository, which libgit2 must not be freeing
//! while it shuts down at exit.

/// Drops `value` on a thread of its own (here, when no thread can be started).
pub fn later<T: Send + 'static>(value: T) {
    // When the thread cannot be spawned, the closure that owns `value` is dropped right here.
    let _ = std::thread::Builder::new()
        .name("free".into())
        .spawn(move || drop(value));
}

#[cfg(test)]
mod tests {
    #[test]
    fn what_is_handed_over_is_dropped() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        // The sender is dropped with the value, which ends the channel.
        super::later((vec![1u8; 1024], tx));
        assert!(
            rx.recv().is_err(),
            "the value was dropped, and the sender with it"
        );
    }
}
