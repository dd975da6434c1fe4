//! Atomic file writes: a file is written completely to a temporary file beside it, then renamed over
//! the old one, so a reader (or a killed run) only ever sees the old file or the new one, whole.
//!
//! New files are made readable by everyone (0644: MISP's web server must read the outputs); a file that
//! already exists keeps its mode. Nothing is fsynced, as git does not by default: the rename protects
//! against interruption, and a power cut mid-run is a job to rerun.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = stage_bytes(path, &[bytes])?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Like [`stage`], for byte slices.
pub fn stage_bytes(path: &Path, parts: &[&[u8]]) -> Result<tempfile::NamedTempFile> {
    let mut tmp = staging(path)?;
    parts
        .iter()
        .try_for_each(|p| tmp.write_all(p))
        .map_err(|e| Error::io(tmp.path(), e))?;
    Ok(tmp)
}

/// An empty temporary file in `path`'s folder (created if need be) with the mode `path` has (else
/// 0644), to write and then rename over `path` with `persist`.
pub fn staging(path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".sigma-galaxy-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    // Keep the old file's mode, else 0644.
    match std::fs::metadata(path) {
        Ok(old) => tmp.as_file().set_permissions(old.permissions()),
        Err(_) => readable_by_all(tmp.as_file()),
    }
    .map_err(|e| Error::io(tmp.path(), e))?;
    Ok(tmp)
}

/// Writes `parts` (text) to a temporary file in `path`'s folder, ready to be renamed over `path` with
/// `persist`; nothing is at `path` until then.
pub fn stage(path: &Path, parts: &[&str]) -> Result<tempfile::NamedTempFile> {
    let bytes: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
    stage_bytes(path, &bytes)
}

/// Makes a new output file readable by everyone (temporary files are created 0600).
fn readable_by_all(file: &std::fs::File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(())
    }
}
