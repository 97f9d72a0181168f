//! Where `keywarden scan` looks: files on disk (walked, skipping `.git`, binary and big files)
//! and every commit of a git repository's history (through `git log -p --all`, so a key that
//! was committed and later removed is still found, at the commit that added it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;
use keywarden_core::key_scan::find_keys_in;

/// Files larger than this are skipped: keys live in source and configuration, not in dumps.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// A NUL byte within this many leading bytes marks a binary file.
const BINARY_SNIFF_BYTES: usize = 8000;

/// One key found: where, and the key itself (shown only masked).
#[derive(Clone)]
pub struct Finding {
    /// `path:line`, or `commit:path:line` for history.
    pub location: String,
    pub key: String,
}

/// Keys found in `text`, located as `{prefix}:{line}`.
fn findings_in(text: &str, prefix: &str, out: &mut Vec<Finding>) {
    let mut line = 1;
    let mut counted_to = 0;
    for found in find_keys_in(text) {
        line += text.as_bytes()[counted_to..found.offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        counted_to = found.offset;
        out.push(Finding {
            location: format!("{prefix}:{line}"),
            key: found.key.to_owned(),
        });
    }
}

/// Scans a file or, recursively, a directory.
pub fn scan_path(path: &Path, out: &mut Vec<Finding>) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot list {}", path.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("cannot list {}", path.display()))?;
        // Sorted, so reports come out in the same order every run.
        entries.sort();
        for entry in entries {
            if entry.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            scan_path(&entry, out)?;
        }
    } else if meta.is_file() && meta.len() > MAX_FILE_BYTES {
        // Said, not silent: a CI log should show what was not looked at.
        eprintln!(
            "keywarden scan: skipped {} (larger than {} MiB)",
            path.display(),
            MAX_FILE_BYTES / (1024 * 1024)
        );
    } else if meta.is_file() {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        if bytes[..bytes.len().min(BINARY_SNIFF_BYTES)].contains(&0) {
            return Ok(());
        }
        findings_in(
            &String::from_utf8_lossy(&bytes),
            &path.display().to_string(),
            out,
        );
    }
    // Symbolic links are not followed (no loops, nothing outside the tree); other kinds of
    // file are not text.
    Ok(())
}

/// Whether `dir` is the top of a git work tree (it has a `.git`).
pub fn is_git_repository(dir: &Path) -> bool {
    dir.join(".git").exists()
}

/// Scans every change of every commit reachable from any ref of the repository at `dir`.
/// Each key is located where a commit added it: `commit:path:line` in that commit's version.
pub fn scan_history(dir: &Path, out: &mut Vec<Finding>) -> anyhow::Result<()> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "core.quotepath=off",
            "log",
            "-p",
            "--all",
            "-U0",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--src-prefix=a/",
            "--dst-prefix=b/",
            "--format=%x01%H",
        ])
        .stdin(Stdio::null())
        .output()
        .context("cannot run git (is it installed?)")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        // A repository without any commit yet has no history to scan.
        if stderr.contains("does not have any commits") {
            return Ok(());
        }
        anyhow::bail!("git log failed in {}: {}", dir.display(), stderr.trim());
    }
    parse_log(&String::from_utf8_lossy(&output.stdout), out);
    Ok(())
}

/// Reads `git log -p -U0` output: commits start with `\x01<sha>`, files with `diff --git`,
/// the new path is on `+++ b/…` before the first hunk, and added lines are the `+` lines of
/// hunks, numbered from the hunk header's `+start`.
fn parse_log(log: &str, out: &mut Vec<Finding>) {
    let mut commit = "";
    let mut path: Option<String> = None;
    let mut in_hunk = false;
    let mut next_line = 0usize;
    for line in log.lines() {
        if let Some(sha) = line.strip_prefix('\u{1}') {
            commit = sha;
            path = None;
            in_hunk = false;
        } else if line.starts_with("diff --git ") {
            path = None;
            in_hunk = false;
        } else if line.starts_with("@@ ") {
            in_hunk = true;
            next_line = hunk_new_start(line).unwrap_or(0);
        } else if in_hunk {
            if let Some(added) = line.strip_prefix('+') {
                if let Some(path) = &path {
                    for found in find_keys_in(added) {
                        out.push(Finding {
                            location: format!("{commit}:{path}:{next_line}"),
                            key: found.key.to_owned(),
                        });
                    }
                }
                next_line += 1;
            }
        } else if let Some(new) = line.strip_prefix("+++ ") {
            path = new.strip_prefix("b/").map(str::to_owned);
        }
    }
}

/// The `c` of a hunk header `@@ -a,b +c,d @@`.
fn hunk_new_start(header: &str) -> Option<usize> {
    let plus = header.split(' ').find(|part| part.starts_with('+'))?;
    plus[1..].split(',').next()?.parse().ok()
}
