//! State load: the input, behind a valid header and checksum (so that decoding is reached), as one
//! state file picked by its first byte; loading keeps what it trusts and never panics, nor does reading
//! back the rules' details a shard left on disk.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigma_galaxy::state::{self, State};

const FILES: &[&str] = &[
    "build.json",
    "sources.bin",
    "blobs.bin",
    "attack.bin",
    "parsed/ab.bin",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let Ok(dir) = tempfile::tempdir() else { return };
    let name = FILES[usize::from(pick) % FILES.len()];
    let path = dir.path().join(name);
    if std::fs::create_dir_all(dir.path().join("parsed")).is_err() {
        return;
    }
    // A header byte with bit 7 set writes the body as is (damaged header); otherwise a valid one.
    let mut bytes = Vec::new();
    if pick & 0x80 == 0 {
        bytes.extend_from_slice(
            format!(
                "sigma-galaxy-state {} {}\n",
                state::FORMAT,
                state::checksum(body)
            )
            .as_bytes(),
        );
    }
    bytes.extend_from_slice(body);
    if std::fs::write(&path, &bytes).is_err() {
        return;
    }
    let (mut loaded, _) = State::load(dir.path());
    // The rules' details left in a shard are read back from it whole, or refused: never a panic.
    let bodies = loaded
        .parsed
        .entries
        .iter_mut()
        .flat_map(|(key, file)| file.rules.iter_mut().map(move |r| (key, &mut r.details)));
    let _ = state::fill_details(dir.path(), &loaded.checksums, bodies);
});
