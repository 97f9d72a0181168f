//! The single writer: one connection on its own thread that commits writes in groups.
//!
//! SQLite allows one writer at a time, and each durable commit costs an fsync. Jobs queue on a
//! channel; the writer takes everything queued, runs each job inside its own savepoint in one
//! transaction, commits once, and only then answers every job. Under load many writes share
//! one fsync; alone, a write is committed immediately. No job is answered before its commit is
//! durable, so an acknowledged write survives `kill -9`.

use std::sync::mpsc;
use std::thread;

use rusqlite::Connection;
use tokio::sync::oneshot;

/// Most jobs committed together; bounds the latency one commit adds to the first job.
const MAX_GROUP: usize = 256;

/// Called once the group's commit is known: `Ok` when durable, `Err` with the reason.
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
/// Runs inside the group's transaction; says whether it succeeded (else its savepoint is
/// rolled back) and how to answer once the commit is known.
type Job = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;

/// Handle to the writer thread. Dropping every handle lets the thread drain and exit.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError<E> {
    /// The job ran and returned an error; its changes were rolled back.
    #[error(transparent)]
    Job(E),
    /// The commit failed or the writer is gone; nothing of the job was kept.
    #[error("commit failed: {0}")]
    Commit(String),
}

impl Writer {
    /// Starts the writer thread on `conn`. It exits once every handle is dropped and the
    /// queue is drained.
    pub fn start(conn: Connection) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("keywarden-sqlite-writer".into())
            .spawn(move || run(conn, queue))?;
        Ok(Self { jobs })
    }

    /// Runs `f` in the writer's transaction and returns its result once committed.
    pub async fn write<T, E>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, WriteError<E>>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            let ok = result.is_ok();
            let completion: Completion = Box::new(move |commit| {
                let outcome = match commit {
                    Ok(()) => result.map_err(WriteError::Job),
                    Err(reason) => Err(WriteError::Commit(reason)),
                };
                // The caller may have gone away (request cancelled); the write stands.
                let _ = reply.send(outcome);
            });
            (ok, completion)
        });
        self.jobs
            .send(job)
            .map_err(|_| WriteError::Commit("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| WriteError::Commit("the writer stopped before answering".into()))?
    }
}

fn run(conn: Connection, queue: mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(&conn, group);
    }
}

fn commit_group(conn: &Connection, group: Vec<Job>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        tracing::error!(error = %e, "could not begin a write transaction");
        // Dropping the jobs unrun drops their reply channels: each caller gets a commit error.
        drop(group);
        return;
    }
    let mut completions = Vec::with_capacity(group.len());
    for job in group {
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            tracing::error!(error = %e, "could not open a job's savepoint");
            drop(job);
            continue;
        }
        let (ok, completion) = job(conn);
        let end = if ok {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        if let Err(e) = conn.execute_batch(end) {
            tracing::error!(error = %e, "could not close a job's savepoint");
        }
        completions.push(completion);
    }
    let commit = conn.execute_batch("COMMIT").map_err(|e| {
        tracing::error!(error = %e, "commit failed");
        let _ = conn.execute_batch("ROLLBACK");
        e.to_string()
    });
    for completion in completions {
        completion(commit.clone());
    }
}
