//! The official Unkey SDKs, unchanged, against a running `keywarden`: runs the tours in
//! `tests/sdk/typescript` (`@unkey/api`) and `tests/sdk/python` (`unkey-py`), each on the
//! embedded SQLite store and then on PostgreSQL + Redis.
//!
//! Dependencies are installed under `CARGO_TARGET_TMPDIR/sdk-conformance/`, never inside the
//! repository, and only again when the lockfile / requirements change. Node.js with npm and
//! Python 3.10+ with `venv` are required: a missing tool fails the test rather than skipping it.

mod common;

use std::io::{ErrorKind, Read};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::cluster::Shared;
use common::{Launch, ROOT_KEY, ServerProcess};

/// Longest a dependency install may take (a cold cache downloads from the registries).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest a tour may take; a healthy one finishes in a few seconds.
const TOUR_TIMEOUT: Duration = Duration::from_secs(90);
/// The only permission of the limited root key the tours use to provoke 403s.
const LIMITED_PERMISSION: &str = "api.*.read_api";

#[tokio::test]
async fn typescript_sdk_tour() {
    let source = sdk_source("typescript");
    let cache = cache_dir("typescript");
    let node = require_tool(
        "node",
        &[
            "-e",
            "const major = Number(process.versions.node.split('.')[0]); \
             console.log(process.version); process.exit(major >= 20 ? 0 : 1)",
        ],
        "Node.js 20+ is required for the TypeScript SDK tour (tests/sdk/typescript)",
    );
    assert!(!node.is_empty(), "node printed no version");
    require_tool(
        "npm",
        &["--version"],
        "npm is required to install the TypeScript SDK tour's dependencies",
    );
    install_npm(&source, &cache);
    // The tour runs from the cache so that Node resolves `@unkey/api` from its node_modules.
    copy(&source.join("tour.ts"), &cache.join("tour.ts"));

    for backend in [Backend::Sqlite, Backend::PostgresRedis] {
        let mut tour = Command::new(cache.join("node_modules/.bin/tsx"));
        tour.arg("tour.ts").current_dir(&cache);
        run_tour("TypeScript (@unkey/api)", backend, tour).await;
    }
}

#[tokio::test]
async fn python_sdk_tour() {
    let source = sdk_source("python");
    let cache = cache_dir("python");
    let python = python_interpreter();
    let venv_python = install_pip(&python, &source, &cache);

    for backend in [Backend::Sqlite, Backend::PostgresRedis] {
        let mut tour = Command::new(&venv_python);
        tour.arg(source.join("tour.py"))
            .current_dir(&source)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1");
        run_tour("Python (unkey-py)", backend, tour).await;
    }
}

/// What the server under a tour stores its state in.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    PostgresRedis,
}

/// Starts a server, creates the limited root key, runs `tour` against it and asserts it
/// passed, showing its output (and the server's log) when it did not.
async fn run_tour(label: &str, backend: Backend, mut tour: Command) {
    let label = format!("{label} on {backend:?}");
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, database, _shared) = match backend {
        Backend::Sqlite => (
            ServerProcess::start(Launch::in_dir(dir.path())),
            dir.path().join("keywarden.db").display().to_string(),
            None,
        ),
        Backend::PostgresRedis => {
            let shared = Shared::create().await;
            let server = shared.node(dir.path());
            (server, shared.options().database_url, Some(shared))
        }
    };
    let limited = create_limited_root_key(dir.path(), &database);
    wait_until_authenticated(&server, &limited).await;

    tour.env("KEYWARDEN_URL", &server.base_url)
        .env("KEYWARDEN_ROOT_KEY", ROOT_KEY)
        .env("KEYWARDEN_LIMITED_ROOT_KEY", &limited)
        .env("NO_COLOR", "1");
    let started = Instant::now();
    let output = run(tour, TOUR_TIMEOUT, &format!("the {label} SDK tour"));
    let elapsed = started.elapsed();
    if !output.status.success() {
        let log = server.stderr_text();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "the {label} SDK tour failed ({}) after {elapsed:.1?}\n\
             --- tour stdout ---\n{}\n--- tour stderr ---\n{}\n--- server log (last lines) ---\n{}",
            output.status,
            output.stdout,
            output.stderr,
            tail.join("\n"),
        );
    }
    println!(
        "{label} SDK tour passed in {elapsed:.1?}\n{}",
        output.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// root keys

/// `keywarden root-key create` against the running server's store; returns the plaintext.
fn create_limited_root_key(dir: &Path, database: &str) -> String {
    let mut command = Command::new(common::binary());
    command
        .args(["root-key", "create", "--permission", LIMITED_PERMISSION])
        .args(["--name", "sdk-conformance-limited", "--database", database])
        .current_dir(dir)
        .env_remove("KEYWARDEN_DATABASE_URL");
    let output = run(
        command,
        Duration::from_secs(30),
        "keywarden root-key create",
    );
    assert!(
        output.status.success(),
        "keywarden root-key create failed ({}):\n{}{}",
        output.status,
        output.stdout,
        output.stderr
    );
    let key = output.stdout.trim().to_owned();
    assert!(
        !key.is_empty() && !key.contains(char::is_whitespace),
        "keywarden root-key create printed no key: {:?}",
        output.stdout
    );
    key
}

/// A running server picks up root keys created by the CLI within about a second: poll until
/// the new key is accepted (any answer but 401).
async fn wait_until_authenticated(server: &ServerProcess, root_key: &str) {
    let status = common::poll_status(
        &common::http_client(),
        server,
        root_key,
        "apis.getApi",
        serde_json::json!({ "apiId": "api_sdkprobe0000" }),
        |s| s != 401,
    )
    .await;
    assert_ne!(
        status, 401,
        "the server did not accept the limited root key within 15 s"
    );
}

// ---------------------------------------------------------------------------------------------
// dependencies

fn sdk_source(language: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/sdk")
        .join(language);
    dir.canonicalize()
        .unwrap_or_else(|e| panic!("{} is missing: {e}", dir.display()))
}

fn cache_dir(language: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("sdk-conformance")
        .join(language);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("could not create {}: {e}", dir.display()));
    dir
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("could not read {}: {e}", path.display()))
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("could not copy {} to {}: {e}", from.display(), to.display()));
}

/// Whether `stamp` records exactly `inputs`, i.e. the install it marks is still current.
fn up_to_date(stamp: &Path, inputs: &[u8], installed: &Path) -> bool {
    installed.exists() && std::fs::read(stamp).is_ok_and(|s| s == inputs)
}

fn write_stamp(stamp: &Path, inputs: &[u8]) {
    std::fs::write(stamp, inputs)
        .unwrap_or_else(|e| panic!("could not write {}: {e}", stamp.display()));
}

/// Fails the test with `why` unless `program args…` runs and succeeds.
fn require_tool(program: &str, args: &[&str], why: &str) -> String {
    match Command::new(program).args(args).output() {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        }
        Ok(output) => panic!(
            "{why}, but `{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            panic!("{why}, but `{program}` was not found on PATH")
        }
        Err(e) => panic!("{why}, but `{program}` could not be run: {e}"),
    }
}

/// `npm ci` into `cache` from the committed lockfile, unless that lockfile is already installed.
fn install_npm(source: &Path, cache: &Path) {
    let manifest = read(&source.join("package.json"));
    let lock = read(&source.join("package-lock.json"));
    let inputs = [manifest.as_slice(), b"\0", lock.as_slice()].concat();
    let stamp = cache.join(".installed");
    let tsx = cache.join("node_modules/.bin/tsx");
    if up_to_date(&stamp, &inputs, &tsx) {
        return;
    }
    let _ = std::fs::remove_file(&stamp);
    copy(&source.join("package.json"), &cache.join("package.json"));
    copy(
        &source.join("package-lock.json"),
        &cache.join("package-lock.json"),
    );
    let mut npm = Command::new("npm");
    npm.args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
        .args(["--loglevel", "error"])
        .current_dir(cache)
        .env("npm_config_update_notifier", "false");
    let output = run(npm, INSTALL_TIMEOUT, "npm ci");
    assert!(
        output.status.success(),
        "npm ci in {} failed ({}):\n{}\n{}",
        cache.display(),
        output.status,
        output.stdout,
        output.stderr
    );
    assert!(tsx.exists(), "npm ci did not install tsx");
    write_stamp(&stamp, &inputs);
}

/// The Python to build the venv with: `KEYWARDEN_SDK_PYTHON`, else `python3`; 3.10+.
fn python_interpreter() -> String {
    let python = std::env::var("KEYWARDEN_SDK_PYTHON").unwrap_or_else(|_| "python3".into());
    let version = require_tool(
        &python,
        &[
            "-c",
            "import sys; print('%d.%d' % sys.version_info[:2]); assert sys.version_info >= (3, 10)",
        ],
        "Python 3.10+ is required for the Python SDK tour (tests/sdk/python); \
         set KEYWARDEN_SDK_PYTHON to choose an interpreter",
    );
    assert!(!version.is_empty(), "{python} printed no version");
    python
}

/// A venv in `cache` with `requirements.txt` installed, unless it already is; returns the
/// venv's interpreter.
fn install_pip(python: &str, source: &Path, cache: &Path) -> PathBuf {
    let requirements = read(&source.join("requirements.txt"));
    // The interpreter is part of the stamp: a venv is tied to the Python that made it.
    let interpreter = require_tool(
        python,
        &["-c", "import sys; print(sys.executable, sys.version)"],
        "Python is required for the Python SDK tour",
    );
    let inputs = [interpreter.as_bytes(), b"\0", requirements.as_slice()].concat();
    let venv = cache.join("venv");
    let venv_python = venv.join("bin/python");
    let stamp = cache.join(".installed");
    if up_to_date(&stamp, &inputs, &venv_python) {
        return venv_python;
    }
    let _ = std::fs::remove_file(&stamp);
    if venv.exists() {
        std::fs::remove_dir_all(&venv)
            .unwrap_or_else(|e| panic!("could not remove {}: {e}", venv.display()));
    }
    let mut create = Command::new(python);
    create.args(["-m", "venv"]).arg(&venv);
    let output = run(create, INSTALL_TIMEOUT, "python -m venv");
    assert!(
        output.status.success(),
        "`{python} -m venv` failed ({}); the venv module is required (e.g. the python3-venv \
         package):\n{}\n{}",
        output.status,
        output.stdout,
        output.stderr
    );
    let mut pip = Command::new(&venv_python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
    ])
    .args(["--quiet", "-r"])
    .arg(source.join("requirements.txt"));
    let output = run(pip, INSTALL_TIMEOUT, "pip install");
    assert!(
        output.status.success(),
        "pip install -r requirements.txt failed ({}):\n{}\n{}",
        output.status,
        output.stdout,
        output.stderr
    );
    write_stamp(&stamp, &inputs);
    venv_python
}

// ---------------------------------------------------------------------------------------------
// processes

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `command` to completion with its output captured; kills it and fails the test if it
/// takes longer than `timeout`.
fn run(mut command: Command, timeout: Duration, what: &str) -> Output {
    // Its own process group, so that a timeout also ends the processes it started (tsx runs
    // the tour in a child node process).
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            panic!("{what}: {:?} was not found", command.get_program())
        }
        Err(e) => panic!("{what}: could not start {:?}: {e}", command.get_program()),
    };
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                stdout.join().unwrap_or_default(),
                stderr.join().unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(25));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
