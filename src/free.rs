//! Freeing at the end of a run: the build's large structures (the state's maps, the parse cache)
//! are dropped on a thread of their own, so that the run does not spend its last tenth of a second
//! freeing, one allocation at a time, memory the process hands back whole when it exits.
//!
//! The command-line tool exits right after the run, so it says so first ([`process_exits`]) and the
//! work is never done at all: the values are left to the exit (clang's `-disable-free` does the same
//! for its syntax trees; a thread freeing them still took a few percent of a small build's CPU before
//! the exit stopped it). A caller that goes on running, such as a test, has everything freed all the
//! same, on that thread.
//!
//! Only plain data goes there: nothing that holds a git repository, which libgit2 must not be freeing
//! while it shuts down at exit.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by [`process_exits`].
static EXITS: AtomicBool = AtomicBool::new(false);

/// Tells [`later`] that the process exits once the run is done, so that what it is given can be
/// left to the exit instead of freed. For `main`; a library caller that goes on running never calls it.
pub fn process_exits() {
    EXITS.store(true, Ordering::Relaxed);
}

/// Drops `value` on a thread of its own (here, when no thread can be started); or, once
/// [`process_exits`] was called, never: the exit hands its memory back whole.
pub fn later<T: Send + 'static>(value: T) {
    if EXITS.load(Ordering::Relaxed) {
        std::mem::forget(value);
        return;
    }
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
