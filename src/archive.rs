//! Archive: a byte-reproducible `.tar.gz` of a folder's files.
//!
//! This module owns the archive format of a release: the same files give the same bytes on any
//! machine, whatever the file system's order, modification times, owners, umask or locale. Entries
//! are a top folder, then every file under it, sorted by path (byte order), with the caller's mtime,
//! uid and gid 0 and no user or group names, mode 0755 for folders and 0644 for files, in ustar
//! format; the gzip header carries no file name and no time, and the compression level is fixed.

use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};

use crate::error::{Error, Result};

/// Every file under `dir`, as `/`-separated relative paths, sorted.
pub fn files(dir: &Path) -> Result<Vec<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
            if kind.is_dir() {
                walk(root, &path, out)?;
            } else if kind.is_file() {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// The folders that hold `files` (each listed once, parents first, sorted).
fn folders(files: &[String]) -> Vec<String> {
    let mut dirs: Vec<String> = files
        .iter()
        .flat_map(|f| {
            f.match_indices('/')
                .map(|(i, _)| f[..i].to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

fn header(path: &str, size: u64, mtime: u64, dir: bool) -> Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path).map_err(|e| Error::Input {
        path: PathBuf::from(path),
        message: format!("cannot be stored in a tar archive: {e}"),
    })?;
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_cksum();
    Ok(h)
}

/// The archive's bytes: the files of `dir` under the top folder `top`, every entry with `mtime`.
pub fn tar_gz(dir: &Path, top: &str, mtime: u64) -> Result<Vec<u8>> {
    let files = files(dir)?;
    let gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::new(9));
    let mut tar = tar::Builder::new(gz);
    let io = |e: std::io::Error| Error::io(dir, e);
    tar.append(
        &header(&format!("{top}/"), 0, mtime, true)?,
        std::io::empty(),
    )
    .map_err(io)?;
    for d in folders(&files) {
        tar.append(
            &header(&format!("{top}/{d}/"), 0, mtime, true)?,
            std::io::empty(),
        )
        .map_err(io)?;
    }
    // Folders first, then files: both sorted, so the order is a function of the paths alone.
    for f in &files {
        let path = dir.join(f);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        tar.append(
            &header(&format!("{top}/{f}"), bytes.len() as u64, mtime, false)?,
            bytes.as_slice(),
        )
        .map_err(io)?;
    }
    let gz = tar.into_inner().map_err(io)?;
    gz.finish().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_files_give_the_same_bytes_whatever_their_times_and_order() {
        let (a, b) = (
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        );
        for (dir, order) in [
            (&a, ["x/2.txt", "x/1.txt", "0.txt"]),
            (&b, ["0.txt", "x/1.txt", "x/2.txt"]),
        ] {
            for f in order {
                let p = dir.path().join(f);
                std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
                std::fs::write(&p, f).expect("write");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        let one = tar_gz(a.path(), "top", 1_700_000_000).expect("tar");
        assert_eq!(one, tar_gz(b.path(), "top", 1_700_000_000).expect("tar"));
        assert_ne!(one, tar_gz(b.path(), "top", 1_700_000_001).expect("tar"));
        // gzip header: no name flag, mtime 0, OS unknown.
        assert_eq!(&one[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255]);
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(one.as_slice()));
        let entries: Vec<(String, u32, u64, u64)> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let h = e.header();
                (
                    e.path().expect("path").display().to_string(),
                    h.mode().expect("mode"),
                    h.uid().expect("uid"),
                    h.mtime().expect("mtime"),
                )
            })
            .collect();
        let paths: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            paths,
            ["top/", "top/x/", "top/0.txt", "top/x/1.txt", "top/x/2.txt"]
        );
        assert!(entries.iter().all(|e| e.2 == 0 && e.3 == 1_700_000_000));
        assert_eq!(entries[2].1, 0o644);
        assert_eq!(entries[1].1, 0o755);
    }
}
