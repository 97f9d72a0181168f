//! Concurrent calls share one script run: calls wait in a queue while earlier batches are in
//! flight, and go to Redis together in the next one.
//!
//! Redis spends most of a lone call on the command around it (reading, parsing and dispatching
//! `EVALSHA`, setting up the script) rather than on the counting; a batch pays that once for
//! all its calls, and this process builds and parses one command instead of many. Batching is
//! natural, with no timer: while a lane has fewer than `in_flight` batches under way, a call
//! is sent at once (so a lone call waits for nothing); once it has that many, calls queue and
//! the first batch to come back takes them along, up to `max_calls` calls or `max_checks`
//! checks. Two batches in flight keep the connection busy while one is on its way back.
//!
//! A lane is the set of calls that may share a script: on one endpoint, every call; on a
//! Redis Cluster, the calls whose keys lie in one hash slot, since one script may only touch
//! keys of one slot. (A call's own keys always share a slot: one across slots is refused
//! before it gets here.) Each lane has its own queue and its own batches in flight, so a
//! slot on a hung node holds up no call of another slot.
//!
//! The script decides the calls of a batch one after the other in the order they arrived,
//! each against the counts the earlier ones left, all at one moment (one `TIME`): the outcome
//! of every call is what it would have been as a script of its own, run right there. So a
//! batch changes when a call is decided, never how.
//!
//! Each call has its own deadline, its timeout from when it was made: it never waits longer,
//! queued or in flight. A call whose caller has given up before its batch is formed is left
//! out of it, so it was never counted; one that times out in flight may have been counted, as
//! any call that times out may. A batch that fails or times out fails every call in it with
//! that error; each caller (a [`ResilientLimiter`](crate::ResilientLimiter), say) then deals
//! with it as with its own.

use std::collections::VecDeque;
use std::collections::hash_map::{Entry, HashMap};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keywarden_core::time::Clock;
use parking_lot::Mutex;
use redis::cluster_routing::Slot;
use redis::{Cmd, ErrorKind, RedisError, Script, ServerErrorKind};
use tokio::sync::oneshot;

use crate::connection::RedisConnection;
use crate::error::RedisCallError;

/// How many batches of one lane may be in flight at once, and how large one may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchLimits {
    pub in_flight: usize,
    pub max_calls: usize,
    /// Checks of all its calls together: a call of 100 checks weighs like many small ones on
    /// the script's time, which every other call of the batch waits through. A call larger
    /// than this goes alone.
    pub max_checks: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            in_flight: 2,
            max_calls: 64,
            max_checks: 256,
        }
    }
}

/// How batching went so far, for benchmarks and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchStats {
    /// Batch scripts sent to Redis.
    pub batches: u64,
    /// Calls (limits and refunds) they carried.
    pub calls: u64,
    /// The most calls one batch carried.
    pub largest_batch: u64,
}

/// What a call asks the script: its kind, the distinct states it names, and its checks.
pub(crate) struct ScriptCall {
    pub kind: CallKind,
    /// Key and window duration (ms) of each distinct (counter, duration) of the call.
    pub states: Vec<(String, u64)>,
    /// For each check: the index of its state in `states`, then its limit and cost (a limit
    /// call), or the window it was counted in and its cost (a refund).
    pub checks: Vec<(usize, u64, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    Limit,
    Refund,
}

impl CallKind {
    /// How many values the script answers for a call of `checks` checks.
    fn reply_len(self, checks: usize) -> usize {
        match self {
            Self::Limit => 3 * checks,
            Self::Refund => 0,
        }
    }
}

/// A call's part of its batch's reply: for a limit call, `admitted`, `seq`, `effective` of
/// each check.
pub(crate) struct Answer {
    reply: Arc<Vec<u64>>,
    at: usize,
    len: usize,
}

impl Answer {
    pub fn values(&self) -> &[u64] {
        &self.reply[self.at..self.at + self.len]
    }
}

/// Which calls may share a script: on a cluster, those of one hash slot; `None` on one
/// endpoint, where all may.
pub(crate) type Lane = Option<Slot>;

/// The queue of calls for the batch script, and the batches in flight, lane by lane.
pub(crate) struct ScriptQueue {
    connection: RedisConnection,
    script: Script,
    timeout: Duration,
    /// Tests only: "now" for the script instead of Redis's clock, read once per batch.
    test_clock: Mutex<Option<Arc<dyn Clock>>>,
    lanes: Mutex<Lanes>,
    batches: AtomicU64,
    calls: AtomicU64,
    largest_batch: AtomicU64,
}

struct Lanes {
    limits: BatchLimits,
    /// The one lane of a single endpoint, kept for good.
    single: LaneQueue,
    /// A cluster's lanes with calls waiting or batches in flight; dropped once idle.
    by_slot: HashMap<Slot, LaneQueue>,
}

#[derive(Default)]
struct LaneQueue {
    waiting: VecDeque<Waiting>,
    in_flight: usize,
}

struct Waiting {
    call: ScriptCall,
    deadline: Instant,
    answer: oneshot::Sender<Result<Answer, RedisCallError>>,
}

impl Lanes {
    fn get(&mut self, lane: Lane) -> Option<&mut LaneQueue> {
        match lane {
            None => Some(&mut self.single),
            Some(slot) => self.by_slot.get_mut(&slot),
        }
    }

    fn get_or_insert(&mut self, lane: Lane) -> &mut LaneQueue {
        match lane {
            None => &mut self.single,
            Some(slot) => self.by_slot.entry(slot).or_default(),
        }
    }

    /// One batch of `lane` ended: the lane has one fewer in flight, and goes if idle.
    fn release(&mut self, lane: Lane) {
        match lane {
            None => self.single.in_flight -= 1,
            Some(slot) => {
                if let Entry::Occupied(mut entry) = self.by_slot.entry(slot) {
                    let queue = entry.get_mut();
                    queue.in_flight -= 1;
                    if queue.in_flight == 0 && queue.waiting.is_empty() {
                        entry.remove();
                    }
                }
            }
        }
    }
}

impl ScriptQueue {
    pub fn new(
        connection: RedisConnection,
        script: Script,
        timeout: Duration,
        limits: BatchLimits,
    ) -> Self {
        Self {
            connection,
            script,
            timeout,
            test_clock: Mutex::new(None),
            lanes: Mutex::new(Lanes {
                limits,
                single: LaneQueue::default(),
                by_slot: HashMap::new(),
            }),
            batches: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            largest_batch: AtomicU64::new(0),
        }
    }

    pub fn connection(&self) -> &RedisConnection {
        &self.connection
    }

    pub fn script(&self) -> &Script {
        &self.script
    }

    pub fn set_test_clock(&self, clock: Arc<dyn Clock>) {
        *self.test_clock.lock() = Some(clock);
    }

    /// The script's "now" argument: empty for Redis's own clock.
    pub fn now_arg(&self) -> Option<i64> {
        self.test_clock
            .lock()
            .as_ref()
            .map(|clock| clock.now().as_millis())
    }

    pub fn set_limits(&self, limits: BatchLimits) {
        self.lanes.lock().limits = limits;
    }

    pub fn stats(&self) -> BatchStats {
        BatchStats {
            batches: self.batches.load(Ordering::Relaxed),
            calls: self.calls.load(Ordering::Relaxed),
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
        }
    }

    /// Sends `call` in the next batch of `lane` and waits for its answer, within the call
    /// timeout from now. Must be called within a Tokio runtime: batches run as tasks of their
    /// own, so that a caller that gives up does not take the other calls of its batch down
    /// with it.
    pub async fn call(
        self: &Arc<Self>,
        lane: Lane,
        call: ScriptCall,
    ) -> Result<Answer, RedisCallError> {
        let deadline = Instant::now() + self.timeout;
        let generation = self.connection.generation();
        let (answer, answered) = oneshot::channel();
        let start_batch = {
            let mut lanes = self.lanes.lock();
            let in_flight = lanes.limits.in_flight;
            let queue = lanes.get_or_insert(lane);
            queue.waiting.push_back(Waiting {
                call,
                deadline,
                answer,
            });
            let start = queue.in_flight < in_flight;
            if start {
                queue.in_flight += 1;
            }
            start
        };
        if start_batch {
            tokio::spawn(Arc::clone(self).send_batches(lane));
        }
        match tokio::time::timeout_at(deadline.into(), answered).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(RedisCallError::Redis(RedisError::from(io::Error::other(
                "the batch carrying the call was dropped",
            )))),
            Err(_) => {
                // As a call that timed out on its own did: the batch carrying it, or one it
                // waited behind, times out too but a little later, and the caller's next call
                // must not go out on the silent connection meanwhile.
                self.connection.replace(generation);
                Err(RedisCallError::Timeout(self.timeout))
            }
        }
    }

    /// Sends batches of `lane`, one after the other, as long as calls wait: one of the lane's
    /// batches in flight.
    async fn send_batches(self: Arc<Self>, lane: Lane) {
        let mut slot = InFlight {
            queue: &self,
            lane,
            held: true,
        };
        loop {
            let batch = {
                let mut lanes = self.lanes.lock();
                let limits = lanes.limits;
                let batch = lanes
                    .get(lane)
                    .map(|queue| self.take_batch(queue, limits))
                    .unwrap_or_default();
                if batch.is_empty() {
                    lanes.release(lane);
                    slot.held = false;
                    return;
                }
                batch
            };
            self.send(batch).await;
        }
    }

    /// The calls at the front of `queue` that go in the next batch. Calls whose caller gave
    /// up, or whose deadline has passed, are left out and never sent.
    fn take_batch(&self, queue: &mut LaneQueue, limits: BatchLimits) -> Vec<Waiting> {
        let now = Instant::now();
        let mut batch: Vec<Waiting> = Vec::new();
        let mut checks = 0;
        while let Some(next) = queue.waiting.front() {
            if next.answer.is_closed() || next.deadline <= now {
                if let Some(dropped) = queue.waiting.pop_front() {
                    let _ = dropped
                        .answer
                        .send(Err(RedisCallError::Timeout(self.timeout)));
                }
                continue;
            }
            let size = next.call.checks.len();
            if !batch.is_empty()
                && (batch.len() >= limits.max_calls || checks + size > limits.max_checks)
            {
                break;
            }
            checks += size;
            batch.extend(queue.waiting.pop_front());
        }
        batch
    }

    /// Runs one batch and hands each of its calls its answer, or the batch's error.
    async fn send(&self, batch: Vec<Waiting>) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        let size = batch.len() as u64;
        self.calls.fetch_add(size, Ordering::Relaxed);
        self.largest_batch.fetch_max(size, Ordering::Relaxed);

        let command = self.command(&batch);
        let script = &self.script;
        let result = self
            .connection
            .run(|mut link| async move {
                match command.query_async::<Vec<u64>>(&mut link).await {
                    Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                        // Redis lost its scripts (a restart, a failover, SCRIPT FLUSH).
                        script.load_async(&mut link).await?;
                        command.query_async(&mut link).await
                    }
                    result => result,
                }
            })
            .await
            .and_then(|reply| split_reply(&batch, reply));
        match result {
            Ok(starts) => {
                for (waiting, answer) in batch.into_iter().zip(starts) {
                    let _ = waiting.answer.send(Ok(answer));
                }
            }
            Err(error) => {
                for waiting in batch {
                    let _ = waiting.answer.send(Err(error.clone()));
                }
            }
        }
    }

    /// `EVALSHA` of the batch script for `batch` (see `scripts/batch.lua`): every distinct
    /// key of the batch once, then each call with its checks pointing at them.
    fn command(&self, batch: &[Waiting]) -> Cmd {
        // The position in KEYS (1-based) of each state of each call, one call after the
        // other.
        let mut keys: Vec<(&str, u64)> = Vec::new();
        let mut positions: Vec<u64> = Vec::new();
        if let [only] = batch {
            // One call: its states are distinct already.
            keys.extend(only.call.states.iter().map(|(key, d)| (key.as_str(), *d)));
            positions.extend(1..=keys.len() as u64);
        } else {
            let mut index: HashMap<&str, u64> = HashMap::with_capacity(2 * batch.len());
            for waiting in batch {
                for (key, duration) in &waiting.call.states {
                    let position = *index.entry(key.as_str()).or_insert_with(|| {
                        keys.push((key.as_str(), *duration));
                        keys.len() as u64
                    });
                    positions.push(position);
                }
            }
        }

        let checks: usize = batch.iter().map(|w| w.call.checks.len()).sum();
        let mut numbers = Numbers(Vec::with_capacity(
            8 * (keys.len() + batch.len() + 3 * checks),
        ));
        for (_, duration) in &keys {
            numbers.push(*duration);
        }
        let mut first_state = 0;
        for waiting in batch {
            let call = &waiting.call;
            let checks = call.checks.len() as f64;
            numbers.push_f64(match call.kind {
                CallKind::Limit => checks,
                CallKind::Refund => -checks,
            });
            for &(state, a, b) in &call.checks {
                numbers.push(positions[first_state + state]);
                numbers.push(a);
                numbers.push(b);
            }
            first_state += call.states.len();
        }

        let mut command = Cmd::with_capacity(
            5 + keys.len(),
            64 + keys.iter().map(|(key, _)| key.len()).sum::<usize>() + numbers.0.len(),
        );
        command
            .arg("EVALSHA")
            .arg(self.script.get_hash())
            .arg(keys.len());
        for (key, _) in &keys {
            command.arg(*key);
        }
        match self.now_arg() {
            Some(now) => command.arg(now),
            None => command.arg(""),
        };
        command.arg(numbers.0);
        command
    }
}

/// The batch script's numbers, as it reads them: little-endian doubles, one after the other.
/// Every number the limiter sends is an integer below 2^53 (limits and costs are capped at
/// 2^52, see `limiter.rs`), which a double holds exactly.
struct Numbers(Vec<u8>);

impl Numbers {
    fn push(&mut self, value: u64) {
        // Exact: `value` is below 2^53.
        self.push_f64(value as f64);
    }

    fn push_f64(&mut self, value: f64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
}

/// Cuts the batch script's reply (`[calls, then each limit call's values…]`) into each call's
/// part.
fn split_reply(batch: &[Waiting], reply: Vec<u64>) -> Result<Vec<Answer>, RedisCallError> {
    let Some((&calls, _)) = reply.split_first() else {
        return Err(RedisCallError::Reply("empty reply"));
    };
    let expected: usize = batch
        .iter()
        .map(|w| w.call.kind.reply_len(w.call.checks.len()))
        .sum();
    if calls != batch.len() as u64 || reply.len() != 1 + expected {
        return Err(RedisCallError::Reply("wrong number of values"));
    }
    let reply = Arc::new(reply);
    let mut at = 1;
    Ok(batch
        .iter()
        .map(|waiting| {
            let len = waiting.call.kind.reply_len(waiting.call.checks.len());
            let answer = Answer {
                reply: Arc::clone(&reply),
                at,
                len,
            };
            at += len;
            answer
        })
        .collect())
}

/// One batch slot of a lane, given back when the task holding it ends, however it ends.
struct InFlight<'a> {
    queue: &'a ScriptQueue,
    lane: Lane,
    held: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.held {
            self.queue.lanes.lock().release(self.lane);
        }
    }
}
