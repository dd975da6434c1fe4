//! `sigma-galaxy install`: put a galaxy pair into a misp-galaxy folder and tell MISP to load it.
//!
//! The pair (`galaxies/TYPE.json`, `clusters/TYPE.json` of `--from`, a build's output or a release
//! bundle, whose `SHA256SUMS` must then match) is checked against what is installed: another cluster uuid for the same type, or a version
//! that is not lower (MISP would ignore the update), refuses the install unless `--force`. Both files
//! are written completely to temporary files beside their targets (mode 0644, readable by the web
//! server) and then renamed over them, the galaxy first: a run killed at any point leaves every file
//! whole, old or new, and the temporary `.tmp` files are not read by MISP, which loads `*.json`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;

use crate::cli::InstallArgs;
use crate::config::GalaxyInfo;
use crate::error::{Error, Result};
use crate::{atomic, compare, emit};

/// Runs `install`; returns the exit code (0 installed, 1 refused or MISP's update failed).
pub fn run(args: &InstallArgs) -> Result<u8> {
    let kind = pair_type(&args.from)?;
    let (from_cluster, from_galaxy) = (
        emit::cluster_path(&args.from, &kind),
        emit::galaxy_path(&args.from, &kind),
    );
    verify_sums(&args.from, &[&from_cluster, &from_galaxy])?;
    let cluster = compare::read(&from_cluster)?;
    let galaxy = compare::read(&from_galaxy)?;
    if !args.misp_dir.is_dir() {
        return Err(Error::config(format!(
            "--misp-dir {}: not a folder (on a MISP server: /var/www/MISP/app/files/misp-galaxy)",
            args.misp_dir.display()
        )));
    }
    let (to_cluster, to_galaxy) = (
        emit::cluster_path(&args.misp_dir, &kind),
        emit::galaxy_path(&args.misp_dir, &kind),
    );
    let problems = refusals(&cluster, &galaxy, &to_cluster, &to_galaxy)?;
    if !problems.is_empty() && !args.force {
        for p in &problems {
            eprintln!("refused: {p}");
        }
        eprintln!("nothing installed; --force installs anyway");
        return Ok(1);
    }
    for p in &problems {
        eprintln!("warning (--force): {p}");
    }
    let default = GalaxyInfo::default();
    if kind == default.kind && uuid_of(&cluster) == Some(default.uuid.to_string()) {
        eprintln!(
            "note: this replaces MISP's own published Sigma galaxy ({}, uuid {}), and a later update of \
             MISP's misp-galaxy checkout may overwrite it again. To install alongside it instead, give \
             the galaxy its own `type`, `uuid` and `name` under `galaxy:` in sigma-galaxy.yml and build again.",
            default.kind, default.uuid
        );
    }

    let galaxy_bytes = std::fs::read(&from_galaxy).map_err(|e| Error::io(&from_galaxy, e))?;
    let cluster_bytes = std::fs::read(&from_cluster).map_err(|e| Error::io(&from_cluster, e))?;
    let staged = [
        (
            atomic::stage_bytes(&to_galaxy, &[&galaxy_bytes])?,
            &to_galaxy,
        ),
        (
            atomic::stage_bytes(&to_cluster, &[&cluster_bytes])?,
            &to_cluster,
        ),
    ];
    for (tmp, path) in staged {
        tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    }
    let version = cluster.get("version").and_then(Json::as_i64).unwrap_or(0);
    eprintln!(
        "installed {} and {} (version {version})",
        to_galaxy.display(),
        to_cluster.display()
    );
    let update = update_command(&args.cake, &args.web_user, current_user().as_deref());
    if !args.update_misp {
        eprintln!("load it into MISP with: {}", update.join(" "));
        return Ok(0);
    }
    eprintln!("running: {}", update.join(" "));
    let status = Command::new(&update[0]).args(&update[1..]).status();
    match status {
        Ok(s) if s.success() => {
            eprintln!("MISP's updateGalaxies finished (exit status 0)");
            Ok(0)
        }
        Ok(s) => {
            let code = s.code().map_or_else(
                || "killed by a signal".to_string(),
                |c| format!("exit status {c}"),
            );
            eprintln!("MISP's updateGalaxies failed ({code}); the files are installed");
            Ok(1)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && update[0] == "sudo" => {
            Err(Error::Input {
                path: PathBuf::from("sudo"),
                message: format!(
                    "not found: the files are installed; run MISP's update as {user} yourself \
                     ({cake} Admin updateGalaxies), or run this install as {user}, which needs no sudo",
                    user = args.web_user,
                    cake = args.cake.display()
                ),
            })
        }
        Err(e) => Err(Error::Input {
            path: PathBuf::from(&update[0]),
            message: format!(
                "cannot run MISP's update ({e}); the files are installed; run it yourself: {}",
                update.join(" ")
            ),
        }),
    }
}

/// A release bundle's `SHA256SUMS`, when there is one, must list `files` with their checksums.
fn verify_sums(dir: &Path, files: &[&Path]) -> Result<()> {
    let sums_path = dir.join("SHA256SUMS");
    let Ok(sums) = std::fs::read_to_string(&sums_path) else {
        return Ok(());
    };
    for file in files {
        let rel = file.strip_prefix(dir).unwrap_or(file);
        let rel: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let rel = rel.join("/");
        let listed = sums.lines().find_map(|l| {
            l.split_once("  ")
                .filter(|(_, p)| *p == rel)
                .map(|(s, _)| s)
        });
        let bytes = std::fs::read(file).map_err(|e| Error::io(*file, e))?;
        if listed != Some(crate::state::sha256_hex(&bytes).as_str()) {
            return Err(Error::Input {
                path: file.to_path_buf(),
                message: format!(
                    "does not match {} (a damaged or edited bundle): nothing installed",
                    sums_path.display()
                ),
            });
        }
    }
    Ok(())
}

/// The galaxy type of the one pair in `dir` (`galaxies/TYPE.json` with `clusters/TYPE.json`).
fn pair_type(dir: &Path) -> Result<String> {
    let galaxies = dir.join("galaxies");
    let mut kinds: Vec<String> = std::fs::read_dir(&galaxies)
        .map_err(|e| Error::io(&galaxies, e))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
        .filter(|k| emit::cluster_path(dir, k).is_file())
        .collect();
    kinds.sort();
    match kinds.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::config(format!(
            "--from {}: no galaxies/TYPE.json with a clusters/TYPE.json beside it",
            dir.display()
        ))),
        many => Err(Error::config(format!(
            "--from {}: several pairs ({}); install from a folder with one",
            dir.display(),
            many.join(", ")
        ))),
    }
}

fn uuid_of(file: &Json) -> Option<String> {
    file.get("uuid")
        .and_then(Json::as_str)
        .map(str::to_ascii_lowercase)
}

/// Why installing over what is there would be a mistake (empty: nothing against it).
fn refusals(
    cluster: &Json,
    galaxy: &Json,
    installed_cluster: &Path,
    installed_galaxy: &Path,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let new_version = cluster.get("version").and_then(Json::as_i64).unwrap_or(0);
    if installed_cluster.is_file() {
        let old = compare::read(installed_cluster)?;
        if uuid_of(&old) != uuid_of(cluster) {
            out.push(format!(
                "{} is another cluster of the same type (uuid {}, this one {}): installing would replace it",
                installed_cluster.display(),
                uuid_of(&old).unwrap_or_default(),
                uuid_of(cluster).unwrap_or_default()
            ));
        }
        let old_version = old.get("version").and_then(Json::as_i64).unwrap_or(0);
        if old_version >= new_version {
            out.push(format!(
                "{} has version {old_version}, not lower than this one's {new_version}: MISP would ignore \
                 the update (it re-imports a cluster only when its version is greater)",
                installed_cluster.display()
            ));
        }
    }
    if installed_galaxy.is_file() {
        let old = compare::read(installed_galaxy)?;
        if uuid_of(&old) != uuid_of(galaxy) {
            out.push(format!(
                "{} is another galaxy of the same type (uuid {}, this one {})",
                installed_galaxy.display(),
                uuid_of(&old).unwrap_or_default(),
                uuid_of(galaxy).unwrap_or_default()
            ));
        }
    }
    Ok(out)
}

/// The user this process runs as (`id -un`), when it can be told.
fn current_user() -> Option<String> {
    let out = Command::new("id").arg("-un").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|u| !u.is_empty())
}

/// MISP's update command: `sudo -u USER CAKE Admin updateGalaxies`, or without sudo when this
/// process already runs as USER.
fn update_command(cake: &Path, user: &str, me: Option<&str>) -> Vec<String> {
    let mut cmd = Vec::new();
    if me != Some(user) {
        cmd.extend(["sudo".to_string(), "-u".to_string(), user.to_string()]);
    }
    cmd.push(cake.display().to_string());
    cmd.extend(["Admin".to_string(), "updateGalaxies".to_string()]);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sudo_only_when_not_already_the_web_user() {
        let cake = Path::new("/var/www/MISP/app/Console/cake");
        assert_eq!(
            update_command(cake, "www-data", Some("root")).join(" "),
            "sudo -u www-data /var/www/MISP/app/Console/cake Admin updateGalaxies"
        );
        assert_eq!(
            update_command(cake, "www-data", Some("www-data")).join(" "),
            "/var/www/MISP/app/Console/cake Admin updateGalaxies"
        );
    }
}
