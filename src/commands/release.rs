//! `sigma-galaxy release`: build the lockfile's commits into a reproducible release bundle.
//!
//! The bundle is built in a temporary folder beside `DIST` and renamed into place only when complete
//! (an existing bundle is replaced as a whole; a folder that is not a bundle is never deleted):
//!
//! ```text
//! DIST/clusters/TYPE.json   DIST/galaxies/TYPE.json   the pair, in misp-galaxy layout
//! DIST/CHANGELOG.md         `diff --format markdown` against --previous (only with a previous cluster)
//! DIST/manifest.json        see crate::manifest
//! DIST/SHA256SUMS           `sha256sum -c` format, every other file
//! DIST.tar.gz               with --archive: see crate::archive
//! ```
//!
//! The galaxy is made by the build pipeline itself, as `build --locked` makes it: same sources, same
//! commits, same state folder (a fresh one seeded from `--previous`'s manifest gives the same uuids).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cli::{BuildArgs, ReleaseArgs};
use crate::config::{Config, Output};
use crate::error::{Error, Result};
use crate::manifest::{self, Manifest};
use crate::state::{self, State, sha256_hex};
use crate::{archive, atomic, build, compare, emit, lockfile};

/// The checksum list's file name.
const SUMS: &str = "SHA256SUMS";
/// The change log's file name.
const CHANGELOG: &str = "CHANGELOG.md";

/// Runs `release`; returns the exit code.
pub fn run(args: &ReleaseArgs) -> Result<u8> {
    let build_args = BuildArgs {
        config: args.config.clone(),
        state: args.state.clone(),
        locked: true,
        quiet: args.quiet,
        value_versions: args.value_versions,
        ..BuildArgs::default()
    };
    let mut config = Config::load(&build_args)?;
    lockfile::pin_config(&mut config)?;
    let note = |text: String| {
        if !args.quiet {
            eprintln!("{text}");
        }
    };
    let dist = &args.out;
    let name = dist
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && *n != "..")
        .ok_or_else(|| {
            Error::config(format!(
                "--out {}: give a folder name for the bundle",
                dist.display()
            ))
        })?
        .to_string();
    if dist.exists() && !is_bundle(dist) {
        return Err(Error::config(format!(
            "--out {}: exists and is not a release bundle (no {}); choose another folder",
            dist.display(),
            manifest::FILE_NAME
        )));
    }
    let parent = match dist.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .tempdir_in(&parent)
        .map_err(|e| Error::io(&parent, e))?;
    let bundle = staging.path().join(&name);
    config.out = bundle.clone();
    config.output = Output::Human {
        verbose: false,
        quiet: true,
    };

    // The previous release: its identity records seed a fresh ledger, its cluster is the base of
    // the versions (and of the change log).
    let mut previous_cluster = None;
    if let Some(prev) = &args.previous {
        if let Some(m) = Manifest::read(prev)? {
            let seeded = state::seed_ledger(&config.state, &m.ledger(), false, args.quiet)?;
            if seeded > 0 {
                note(format!(
                    "seeded the UUID ledger with {seeded} identity record(s) from {}",
                    prev.join(manifest::FILE_NAME).display()
                ));
            }
        }
        let kind = &config.galaxy.kind;
        let (cluster, galaxy) = (
            emit::cluster_path(prev, kind),
            emit::galaxy_path(prev, kind),
        );
        if cluster.is_file() {
            for (from, to) in [
                (&cluster, emit::cluster_path(&bundle, kind)),
                (&galaxy, emit::galaxy_path(&bundle, kind)),
            ] {
                if from.is_file() {
                    let bytes = std::fs::read(from).map_err(|e| Error::io(from, e))?;
                    atomic::write(&to, &bytes)?;
                }
            }
            previous_cluster = Some(compare::read(&cluster)?);
        } else if !prev.join(manifest::FILE_NAME).is_file() {
            return Err(Error::config(format!(
                "--previous {}: neither {} nor {} is there",
                prev.display(),
                cluster.display(),
                manifest::FILE_NAME
            )));
        }
    }

    let summary = build::build(&config)?;
    if !summary.warnings.is_empty() {
        note(format!(
            "{} rule problem(s); `sigma-galaxy build` lists them",
            summary.warnings.len()
        ));
    }
    let kind = &config.galaxy.kind;
    let cluster_file = emit::cluster_path(&bundle, kind);
    if let Some(old) = &previous_cluster {
        let new = compare::read(&cluster_file)?;
        let text = compare::markdown(&compare::compare(old, &new));
        atomic::write(&bundle.join(CHANGELOG), text.as_bytes())?;
    }

    // The manifest: sources as locked, the galaxy, every file's checksum, the identity records.
    let names: Vec<String> = config.sources.iter().map(|s| s.name.clone()).collect();
    let (state, _) = State::load(&config.state);
    let files = checksums(&bundle, false)?;
    let m = Manifest::new(
        manifest::Galaxy {
            kind: kind.clone(),
            name: config.galaxy.name.clone(),
            uuid: config.galaxy.uuid,
            version: summary.version,
            values: summary.values,
        },
        lockfile::from_build(&config, &summary)
            .sources
            .into_iter()
            .map(|l| manifest::Source {
                name: l.name,
                location: l.location,
                reference: l.reference,
                commit: l.commit,
            })
            .collect(),
        files,
        manifest::identities(&state.sources.ledger, &names),
    );
    atomic::write(&bundle.join(manifest::FILE_NAME), m.to_text().as_bytes())?;
    let sums: String = checksums(&bundle, true)?
        .iter()
        .map(|(path, sum)| format!("{sum}  {path}\n"))
        .collect();
    atomic::write(&bundle.join(SUMS), sums.as_bytes())?;
    open_folders(&bundle)?;

    let archive_bytes = if args.archive {
        let mtime = match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) => v.trim().parse::<u64>().map_err(|_| {
                Error::config(format!(
                    "SOURCE_DATE_EPOCH={v:?} is not a number of seconds"
                ))
            })?,
            Err(_) => summary
                .sources
                .iter()
                .map(|s| s.commit_time.max(0) as u64)
                .max()
                .unwrap_or(0),
        };
        Some((archive::tar_gz(&bundle, &name, mtime)?, mtime))
    } else {
        None
    };
    replace(&bundle, dist)?;
    note(format!(
        "released {}: {} values, version {}, {} derived uuid(s){}",
        dist.display(),
        summary.values,
        summary.version,
        m.identities.len(),
        if previous_cluster.is_some() {
            ", CHANGELOG.md"
        } else {
            ""
        }
    ));
    if let Some((bytes, mtime)) = archive_bytes {
        let mut path = dist.as_os_str().to_owned();
        path.push(".tar.gz");
        let path = PathBuf::from(path);
        atomic::write(&path, &bytes)?;
        note(format!(
            "wrote {} (sha256 {}, mtime {mtime})",
            path.display(),
            sha256_hex(&bytes)
        ));
    }
    Ok(0)
}

/// Whether `dir` holds a release bundle or nothing (and may be replaced).
fn is_bundle(dir: &Path) -> bool {
    dir.join(manifest::FILE_NAME).is_file()
        || std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}

/// Path → hex SHA-256 of every file of the bundle but the checksum list (and the manifest, unless
/// `with_manifest`).
fn checksums(bundle: &Path, with_manifest: bool) -> Result<BTreeMap<String, String>> {
    archive::files(bundle)?
        .into_iter()
        .filter(|f| f != SUMS && (with_manifest || f != manifest::FILE_NAME))
        .map(|f| {
            let path = bundle.join(&f);
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            Ok((f, sha256_hex(&bytes)))
        })
        .collect()
}

/// Folders of the bundle get mode 0755, whatever the umask (the web server reads them).
fn open_folders(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let set = |d: &Path| {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::io(d, e))
        };
        set(dir)?;
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let path = entry.map_err(|e| Error::io(dir, e))?.path();
            if path.is_dir() {
                open_folders(&path)?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Moves the finished bundle to `dist`, replacing a previous bundle there.
fn replace(bundle: &Path, dist: &Path) -> Result<()> {
    if !dist.exists() {
        return std::fs::rename(bundle, dist).map_err(|e| Error::io(dist, e));
    }
    let old = bundle.with_file_name(".replaced");
    std::fs::rename(dist, &old).map_err(|e| Error::io(dist, e))?;
    std::fs::rename(bundle, dist).map_err(|e| Error::io(dist, e))?;
    std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))
}
