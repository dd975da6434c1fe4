//! Scale benchmark (issue 10): repositories of 10k, 30k and 100k rules made from the corpus's rules,
//! and the corpus itself, all measured side by side in one run.
//!
//! For each size, a bare repository is generated (`git fast-import`) from the rule files of the
//! corpus's last commit, copied under `cNN/` folders with fresh ids and titles until the size is
//! reached: one commit with every rule, then one commit changing 10 of them. Every repository, the
//! corpus's too, has a GitHub `origin`, as a clone has, so values link to their files. The release
//! binary then runs as a child process under `/usr/bin/time` (CPU = user + system seconds, peak RSS
//! of that process) for:
//!
//! - **clean**: the first commit on a fresh state and output folder (median of 3);
//! - **no-op**: the same again (median of 3);
//! - **10 rules**: the second commit on the clean build's state (median of 5, state restored between;
//!   the runs of all binaries interleaved);
//!
//! and, in this process, the **floor**: read every rule blob, parse every file (in parallel, as the
//! build does), write the parsed records as JSON; plus `git log --first-parent --name-only` over the
//! same history (the class a history walk belongs to), median of 3 like the clean builds. The corpus
//! row builds its last commit, and its incremental figure is the mean one-commit run over the replay
//! of its last 60 commits. Below each table, the **output floor** of an incremental build: what any
//! build that rewrites the cluster must spend however much it caches (read and checksum the previous
//! file, write and checksum the new one, rename it over), in this process, median of 3.
//!
//! On a virtual machine whose balloon device reports free pages to the host (virtio-balloon
//! `free_page_reporting`, as on the machines this project runs on), a page the guest has reported
//! free costs several times its usual system time when it is next used, the host backing it again:
//! a 100k-rule incremental run took 0.20 s of system time right after a run like it (it got the pages
//! that run had just freed) and 0.80 s when another process had just taken 3 GB (38% of its samples
//! in the kernel zeroing pages). Runs here come after the floor and the clean builds, which take and
//! free gigabytes; their system time is the most variable part of the figures.
//!
//! With `SIGMA_GALAXY_BASELINE=/path/to/an/older/sigma-galaxy` (several, separated by `:`), every build
//! figure is also measured for each of those binaries, one after the other for each repository, so
//! "before" and "after" come from one run on one machine.
//!
//! Run: `cargo bench --bench scale` (`-- --sizes 10000,30000` to choose sizes). Needs `../shared` (or
//! `SIGMA_GALAXY_SHARED=DIR`) and `/usr/bin/time` (Debian package `time`); without them, says so and
//! exits 0. `SIGMA_GALAXY_BENCH_KEEP=1` keeps the generated repositories in the temporary folder.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use rayon::prelude::*;

/// What one child run cost.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    /// User + system CPU seconds.
    cpu: f64,
    /// Wall-clock seconds.
    wall: f64,
    /// Peak resident set, MB.
    rss: f64,
}

/// Runs `program args` under `/usr/bin/time`; its cost.
fn measure(program: &Path, args: &[&str]) -> Cost {
    let report = tempfile::NamedTempFile::new().unwrap();
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e %U %S %M")
        .arg("-o")
        .arg(report.path())
        .arg(program)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("/usr/bin/time");
    assert!(status.success(), "{} {args:?} failed", program.display());
    let text = std::fs::read_to_string(report.path()).unwrap();
    let f: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    Cost {
        wall: f[0],
        cpu: f[1] + f[2],
        rss: f[3] / 1024.0,
    }
}

/// The median (by CPU) of several costs.
fn median(mut c: Vec<Cost>) -> Cost {
    c.sort_by(|a, b| a.cpu.total_cmp(&b.cpu));
    c[c.len() / 2]
}

/// This process's CPU seconds so far, all its threads: the nanoseconds each has run
/// (`/proc/self/task/*/schedstat`), else clock ticks of 1/100 s (`/proc/self/stat`), which would
/// quantise a 0.1 s floor component by a tenth. The thread pool lives as long as the process, so
/// the difference of two readings is what ran in between.
fn self_cpu() -> f64 {
    let ns: Option<u64> = std::fs::read_dir("/proc/self/task").ok().and_then(|tasks| {
        tasks
            .map(|task| {
                let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
                stat.split_whitespace().next()?.parse::<u64>().ok()
            })
            .sum()
    });
    if let Some(ns) = ns {
        return ns as f64 / 1e9;
    }
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command name: state is field 3, utime 14 and stime 15 (1-based, whole line).
    let tick = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<f64>().ok());
    (tick(14).unwrap_or(0.0) + tick(15).unwrap_or(0.0)) / 100.0
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The rule files (path, bytes) of `commit`.
fn rule_files(repo: &Path, commit: &str) -> Vec<(String, Vec<u8>)> {
    let repo = git2::Repository::open(repo).unwrap();
    let tree = repo
        .revparse_single(commit)
        .unwrap()
        .peel_to_tree()
        .unwrap();
    let mut out = Vec::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, e| {
        let name = e.name().unwrap_or_default();
        if e.kind() == Some(git2::ObjectType::Blob)
            && (name.ends_with(".yml") || name.ends_with(".yaml"))
        {
            let blob = repo.find_blob(e.id()).unwrap();
            out.push((format!("{dir}{name}"), blob.content().to_vec()));
        }
        git2::TreeWalkResult::Ok
    })
    .unwrap();
    out
}

/// `text` with each top-level `title:` prefixed by `tag` and each top-level `id:` replaced by a uuid
/// unique to (`seed`, line).
fn retag(text: &[u8], tag: &str, seed: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(text);
    let mut out = String::with_capacity(text.len() + 64);
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if let Some(rest) = line.strip_prefix("title: ") {
            match rest.chars().next() {
                Some(q @ ('\'' | '"')) => out.push_str(&format!("title: {q}{tag} {}", &rest[1..])),
                _ => out.push_str(&format!("title: {tag} {rest}")),
            }
        } else if line.starts_with("id: ") && !seed.is_empty() {
            let id =
                uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{seed}:{n}").as_bytes());
            out.push_str(&format!("id: {id}\n"));
        } else {
            out.push_str(line);
        }
    }
    out.into_bytes()
}

/// Generates a bare repository of `size` rules from `corpus` (one commit), and a second commit that
/// changes 10 of them. Returns the two commit ids.
/// Gives `repo` a GitHub origin, as a clone of a rules repository has: every value then carries a
/// link to its file, as it does for users.
fn add_origin(repo: &Path) {
    git(
        repo,
        &[
            "remote",
            "add",
            "origin",
            "https://github.com/example/rules.git",
        ],
    );
}

fn generate(corpus: &[(String, Vec<u8>)], size: usize, dest: &Path) -> (String, String) {
    git(
        Path::new("."),
        &["init", "-q", "--bare", "-b", "main", dest.to_str().unwrap()],
    );
    add_origin(dest);
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dest)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import");
    let mut stdin = std::io::BufWriter::new(child.stdin.take().unwrap());
    let mut files = Vec::with_capacity(size);
    for k in 0..size {
        let (path, text) = &corpus[k % corpus.len()];
        let copy = k / corpus.len();
        let path = format!("c{copy:02}/{path}");
        let text = if copy == 0 {
            text.clone()
        } else {
            retag(text, &format!("C{copy}"), &path)
        };
        write!(stdin, "blob\nmark :{}\ndata {}\n", k + 1, text.len()).unwrap();
        stdin.write_all(&text).unwrap();
        stdin.write_all(b"\n").unwrap();
        files.push((path, text));
    }
    let commit = |stdin: &mut std::io::BufWriter<_>, time: i64, message: &str| {
        write!(
            stdin,
            "commit refs/heads/main\ncommitter Bench <bench@example.invalid> {time} +0000\ndata {}\n{message}\n",
            message.len()
        )
        .unwrap();
    };
    commit(&mut stdin, 1_750_000_000, "all rules");
    for (k, (path, _)) in files.iter().enumerate() {
        writeln!(stdin, "M 100644 :{} {path}", k + 1).unwrap();
    }
    commit(&mut stdin, 1_750_000_060, "ten rules changed");
    for i in 0..10 {
        let (path, text) = &files[i * size / 10 + size / 20];
        let changed = retag(text, "Changed", "");
        write!(stdin, "M 100644 inline {path}\ndata {}\n", changed.len()).unwrap();
        stdin.write_all(&changed).unwrap();
        stdin.write_all(b"\n").unwrap();
    }
    drop(stdin);
    assert!(child.wait().unwrap().success(), "fast-import");
    let head = git(dest, &["rev-parse", "main", "main~1"]);
    let mut ids = head.split_whitespace().map(String::from);
    let (second, first) = (ids.next().unwrap(), ids.next().unwrap());
    (first, second)
}

/// The floor, in this process: CPU seconds to read every rule blob of `commit`, parse them all (in
/// parallel), and write the records as JSON; and `git log --first-parent --name-only`'s cost.
#[derive(Debug)]
struct Floor {
    read: f64,
    parse: f64,
    json: f64,
    log: Cost,
}

/// The floor of `commit`: the median (by total) of 3 measurements, as clean builds are.
fn floor(repo: &Path, commit: &str, scratch: &Path) -> Floor {
    let mut runs: Vec<Floor> = (0..3).map(|_| floor_once(repo, commit, scratch)).collect();
    runs.sort_by(|a, b| a.total().total_cmp(&b.total()));
    runs.swap_remove(1)
}

fn floor_once(repo: &Path, commit: &str, scratch: &Path) -> Floor {
    let t0 = self_cpu();
    let files = rule_files(repo, commit);
    let t1 = self_cpu();
    let parsed: Vec<sigma_galaxy::parse::ParsedFile> = files
        .par_iter()
        .map(|(_, bytes)| {
            sigma_galaxy::parse::parse_file(bytes, &sigma_galaxy::parse::Limits::default())
        })
        .collect();
    let t2 = self_cpu();
    let out = std::io::BufWriter::new(std::fs::File::create(scratch.join("floor.json")).unwrap());
    serde_json::to_writer_pretty(out, &parsed).unwrap();
    let t3 = self_cpu();
    let log = measure(
        Path::new("git"),
        &[
            "-C",
            repo.to_str().unwrap(),
            "log",
            "--first-parent",
            "--name-only",
            "--format=%H",
            commit,
        ],
    );
    Floor {
        read: t1 - t0,
        parse: t2 - t1,
        json: t3 - t2,
        log,
    }
}

/// What any incremental build that rewrites the cluster file must do at the least, whatever it
/// caches: read the previous file and checksum it, write the new one (here the same bytes) and
/// checksum it, rename it over the old one. CPU of this process (it reads and writes through one
/// 1 MB buffer, as a build's own floor would), median of 3, each on a fresh copy of `cluster`.
fn output_floor(cluster: &Path, scratch: &Path) -> f64 {
    use std::io::Read as _;
    let mut runs: Vec<f64> = (0..3)
        .map(|_| {
            let old = scratch.join("output-floor.json");
            std::fs::copy(cluster, &old).unwrap();
            let _ = Command::new("sync").status();
            let t0 = self_cpu();
            let mut input = std::fs::File::open(&old).unwrap();
            let tmp = scratch.join("output-floor.json.tmp");
            let mut output = std::fs::File::create(&tmp).unwrap();
            let mut buf = vec![0u8; 1 << 20];
            let (mut read, mut written) = (
                sigma_galaxy::hash::Checksum::new(),
                sigma_galaxy::hash::Checksum::new(),
            );
            loop {
                let n = input.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                read.update(&buf[..n]);
                output.write_all(&buf[..n]).unwrap();
                written.update(&buf[..n]);
            }
            drop(output);
            std::fs::rename(&tmp, &old).unwrap();
            drop(input);
            let spent = self_cpu() - t0;
            std::hint::black_box((read.hex(), written.hex()));
            spent
        })
        .collect();
    let _ = std::fs::remove_file(scratch.join("output-floor.json"));
    runs.sort_by(f64::total_cmp);
    runs[1]
}

/// The cluster file a build left in `out`.
fn cluster_in(out: &Path) -> PathBuf {
    out.join("clusters/sigma-rules.json")
}

impl Floor {
    fn total(&self) -> f64 {
        self.read + self.parse + self.json + self.log.cpu
    }
}

/// Build figures of one binary on one repository.
struct Figures {
    clean: Cost,
    noop: Cost,
    change: Cost,
    /// Stage timings (ms, wall) of one more incremental run, when it is one commit.
    stages: String,
}

fn build_args<'a>(source: &'a str, attack: &'a str, out: &'a str, state: &'a str) -> Vec<&'a str> {
    vec![
        "build",
        "--quiet",
        "--source",
        source,
        "--attack-clusters",
        attack,
        "--out",
        out,
        "--state",
        state,
    ]
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
    // The copy's dirty pages are written back now, not during the run measured next.
    let _ = Command::new("sync").status();
}

/// How many restored one-commit runs the incremental figure is the median of.
const CHANGE_RUNS: usize = 5;

/// Clean and no-op figures of `bin`, `first` built clean in `work`; then, when `next` is one commit,
/// the state and outputs saved for [`change_run`] (which the caller interleaves across binaries),
/// else the incremental figure: the mean over building each of `next` in turn on that state.
fn figures(
    bin: &Path,
    repo: &Path,
    first: &str,
    next: &[String],
    attack: &str,
    work: &Path,
) -> Figures {
    let p = |name: &str| work.join(name).to_str().unwrap().to_string();
    let (out, state) = (p("out"), p("state"));
    let source = |c: &str| format!("{}#{c}", repo.display());
    let first_source = source(first);
    // Clean: median of 3, each on a fresh state and output folder (the last one's are kept).
    let clean = median(
        (0..3)
            .map(|_| {
                for d in [&out, &state] {
                    let _ = std::fs::remove_dir_all(d);
                }
                measure(bin, &build_args(&first_source, attack, &out, &state))
            })
            .collect(),
    );
    let noop = median(
        (0..3)
            .map(|_| measure(bin, &build_args(&first_source, attack, &out, &state)))
            .collect(),
    );
    let change = if next.len() == 1 {
        copy_dir(Path::new(&state), &work.join("state-saved"));
        copy_dir(Path::new(&out), &work.join("out-saved"));
        Cost::default()
    } else {
        let runs: Vec<Cost> = next
            .iter()
            .map(|c| measure(bin, &build_args(&source(c), attack, &out, &state)))
            .collect();
        let n = runs.len() as f64;
        Cost {
            cpu: runs.iter().map(|c| c.cpu).sum::<f64>() / n,
            wall: runs.iter().map(|c| c.wall).sum::<f64>() / n,
            rss: runs.iter().map(|c| c.rss).fold(0.0, f64::max),
        }
    };
    Figures {
        clean,
        noop,
        change,
        stages: String::new(),
    }
}

/// The arguments of one build of `next` on the state and outputs [`figures`] saved in `work`,
/// restored first.
fn restored(repo: &Path, next: &str, attack: &str, work: &Path) -> Vec<String> {
    let p = |name: &str| work.join(name).to_str().unwrap().to_string();
    let (out, state) = (p("out"), p("state"));
    copy_dir(&work.join("state-saved"), Path::new(&state));
    copy_dir(&work.join("out-saved"), Path::new(&out));
    let next_source = format!("{}#{next}", repo.display());
    build_args(&next_source, attack, &out, &state)
        .into_iter()
        .map(String::from)
        .collect()
}

/// The cost of one build of `next` on the saved state (see [`restored`]).
fn change_run(bin: &Path, repo: &Path, next: &str, attack: &str, work: &Path) -> Cost {
    let args = restored(repo, next, attack, work);
    measure(bin, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The stage timings of one more such build, run with `--verbose --json` (not measured).
fn change_stages(bin: &Path, repo: &Path, next: &str, attack: &str, work: &Path) -> String {
    let mut args = restored(repo, next, attack, work);
    args.retain(|a| a != "--quiet");
    args.extend(["--verbose".into(), "--json".into()]);
    let run = Command::new(bin).args(&args).output().expect("build");
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap_or_default();
    summary["timings"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| {
                    format!(
                        "{} {:.0}",
                        t["stage"].as_str().unwrap_or("?"),
                        t["ms"].as_f64().unwrap_or(0.0)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// Prints the [`output_floor`] of the cluster at `cluster`, as a share of the first binary's clean
/// build (`clean`, CPU s).
fn output_floor_line(cluster: &Path, scratch: &Path, clean: Option<f64>) {
    let size = std::fs::metadata(cluster).map_or(0, |m| m.len());
    let cpu = output_floor(cluster, scratch);
    println!(
        "  output floor of an incremental build ({:.0} MB cluster read and checksummed, written, checksummed, renamed over): {cpu:.3}s cpu{}",
        size as f64 / 1e6,
        clean.map_or_else(String::new, |c| format!(
            " = {:.1}% of this clean",
            100.0 * cpu / c
        )),
    );
}

fn row(label: &str, f: &Figures, floor: f64) {
    let pct = |c: &Cost| 100.0 * c.cpu / f.clean.cpu;
    println!(
        "{label:<22} clean {:>6.2}s cpu {:>6.2}s wall {:>5.0} MB ({:.2}× floor) | no-op {:>5.3}s cpu {:>4.1}% {:>4.0} MB | change {:>5.3}s cpu {:>4.1}% {:>4.0} MB",
        f.clean.cpu,
        f.clean.wall,
        f.clean.rss,
        f.clean.cpu / floor,
        f.noop.cpu,
        pct(&f.noop),
        f.noop.rss,
        f.change.cpu,
        pct(&f.change),
        f.change.rss,
    );
    if !f.stages.is_empty() {
        println!("{:<22} change stages (ms): {}", "", f.stages);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<usize> = args
        .iter()
        .position(|a| a == "--sizes")
        .and_then(|i| args.get(i + 1))
        .map_or(vec![10_000, 30_000, 100_000], |s| {
            s.split(',').map(|n| n.parse().expect("a size")).collect()
        });
    // `../shared` beside the checkout, or where SIGMA_GALAXY_SHARED says.
    let shared = std::env::var_os("SIGMA_GALAXY_SHARED").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
        PathBuf::from,
    );
    if !shared.join("corpus").is_dir() || !Path::new("/usr/bin/time").exists() {
        println!("../shared/corpus or /usr/bin/time not found: nothing to benchmark");
        return;
    }
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_sigma-galaxy"));
    let mut bins = vec![("this".to_string(), bin)];
    if let Some(baselines) = std::env::var_os("SIGMA_GALAXY_BASELINE") {
        for (n, b) in std::env::split_paths(&baselines).enumerate() {
            bins.push((format!("baseline-{}", n + 1), b));
        }
    }
    let work = tempfile::tempdir().expect("tempdir");
    let corpus = work.path().join("corpus.git");
    let status = Command::new(shared.join("tools/import-history.sh"))
        .arg(&corpus)
        .stdout(Stdio::null())
        .status()
        .expect("import-history.sh");
    assert!(status.success());
    add_origin(&corpus);
    let attack = shared.join("misp-galaxy/clusters");
    let attack = attack.to_str().unwrap();
    let rules = rule_files(&corpus, "main");
    println!(
        "scale bench: {} rule files in the corpus's last commit; CPU = user+sys s of the child; RSS = its peak; % = CPU of clean",
        rules.len()
    );
    for (name, b) in &bins {
        println!("  {name}: {}", b.display());
    }

    // The corpus: its last commit, and the replay of its last 60 commits.
    let commits: Vec<String> = git(
        &corpus,
        &["rev-list", "--first-parent", "--reverse", "main"],
    )
    .split_whitespace()
    .map(String::from)
    .collect();
    let last = commits.last().unwrap().clone();
    let fl = floor(&corpus, &last, work.path());
    println!(
        "\ncorpus ({} commits, last commit): floor {:.2}s cpu = read {:.2} + parse {:.2} + json {:.2} + git log {:.2}",
        commits.len(),
        fl.total(),
        fl.read,
        fl.parse,
        fl.json,
        fl.log.cpu
    );
    let replay_from = commits.len().saturating_sub(61);
    let mut first_clean = None;
    for (name, b) in &bins {
        let dir = work.path().join(format!("corpus-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        // Clean and no-op on the last commit.
        let mut f = figures(b, &corpus, &last, std::slice::from_ref(&last), attack, &dir);
        // Change: the mean one-commit run over the replay (on its own state).
        let chain = figures(
            b,
            &corpus,
            &commits[replay_from],
            &commits[replay_from + 1..],
            attack,
            &dir,
        );
        f.change = chain.change;
        f.stages = String::new();
        row(&format!("  {name}"), &f, fl.total());
        first_clean.get_or_insert(f.clean.cpu);
    }
    println!("  (change = mean one-commit incremental run over the last 60 commits)");
    output_floor_line(
        &cluster_in(&work.path().join(format!("corpus-{}/out", bins[0].0))),
        work.path(),
        first_clean,
    );

    for size in sizes {
        let dir = work.path().join(format!("s{size}"));
        std::fs::create_dir_all(&dir).unwrap();
        let repo = dir.join("repo.git");
        let started = Instant::now();
        let (first, second) = generate(&rules, size, &repo);
        let fl = floor(&repo, &first, &dir);
        println!(
            "\n{size} rules (generated in {:.1}s): floor {:.2}s cpu = read {:.2} + parse {:.2} + json {:.2} + git log {:.2}",
            started.elapsed().as_secs_f64(),
            fl.total(),
            fl.read,
            fl.parse,
            fl.json,
            fl.log.cpu
        );
        let mut figs: Vec<Figures> = bins
            .iter()
            .map(|(name, b)| {
                let sub = dir.join(name);
                std::fs::create_dir_all(&sub).unwrap();
                figures(
                    b,
                    &repo,
                    &first,
                    std::slice::from_ref(&second),
                    attack,
                    &sub,
                )
            })
            .collect();
        // The 10-rule runs, interleaved across the binaries: whatever the machine does meanwhile
        // (see page reporting above) falls on all of them alike.
        let mut runs: Vec<Vec<Cost>> = vec![Vec::new(); bins.len()];
        for _ in 0..CHANGE_RUNS {
            for (k, (name, b)) in bins.iter().enumerate() {
                runs[k].push(change_run(b, &repo, &second, attack, &dir.join(name)));
            }
        }
        let mut clean = None;
        for ((f, (name, b)), runs) in figs.iter_mut().zip(&bins).zip(runs) {
            f.change = median(runs);
            f.stages = change_stages(b, &repo, &second, attack, &dir.join(name));
            row(&format!("  {name}"), f, fl.total());
            clean.get_or_insert(f.clean.cpu);
        }
        output_floor_line(&cluster_in(&dir.join(&bins[0].0).join("out")), &dir, clean);
        if std::env::var_os("SIGMA_GALAXY_BENCH_KEEP").is_some() {
            let kept = std::env::temp_dir().join(format!("sigma-galaxy-scale-{size}.git"));
            let _ = std::fs::remove_dir_all(&kept);
            std::fs::rename(&repo, &kept).expect("keep the repository");
            println!("  (repository kept at {})", kept.display());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
