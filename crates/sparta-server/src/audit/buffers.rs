//! The audit lines waiting for the writer: one buffer per thread that
//! writes lines, so that a request formats its line where its data is hot
//! and takes a lock no other request contends for. The writer thread swaps
//! each buffer's text out in turn.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use sparta_core::civil::Clock;
use tokio::sync::Notify;

/// One thread's waiting lines.
#[derive(Default)]
struct Pending {
    text: String,
    lines: u64,
    /// The time text of the last second, per thread like the buffer.
    clock: Clock,
}

type Slot = Arc<Mutex<Pending>>;

/// Every thread's buffer of one audit log, and how its writer is woken.
pub(super) struct Buffers {
    id: u64,
    capacity: usize,
    slots: Mutex<Vec<Slot>>,
    /// Set by the writer before it parks, so that the next line wakes it.
    idle: AtomicBool,
    stop: AtomicBool,
    writer: OnceLock<std::thread::Thread>,
    /// Told after each round of the writer: buffers have room again.
    room: Notify,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's slot in each live audit log (one, but for tests).
    static MINE: RefCell<Vec<(u64, Weak<Buffers>, Slot)>> = const { RefCell::new(Vec::new()) };
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while writing a line leaves only text (or a registered slot)
    // behind: go on.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Buffers {
    pub(super) fn new(capacity: usize) -> Arc<Buffers> {
        Arc::new(Buffers {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            capacity,
            slots: Mutex::new(Vec::new()),
            idle: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            writer: OnceLock::new(),
            room: Notify::new(),
        })
    }

    pub(super) fn set_writer(&self, thread: std::thread::Thread) {
        let _ = self.writer.set(thread);
    }

    /// This thread's slot, made and registered on its first line.
    fn slot(self: &Arc<Self>) -> Slot {
        MINE.with(|mine| {
            let mut mine = mine.borrow_mut();
            if let Some((_, _, s)) = mine.iter().find(|(id, _, _)| *id == self.id) {
                return s.clone();
            }
            mine.retain(|(_, log, _)| log.strong_count() > 0);
            let s = Slot::default();
            lock(&self.slots).push(s.clone());
            mine.push((self.id, Arc::downgrade(self), s.clone()));
            s
        })
    }

    /// Appends one line written by `write` if this thread's buffer has
    /// room (waking the writer if it sleeps); gives `write` back if not.
    pub(super) fn push_now<W: FnOnce(&mut String, &mut Clock)>(
        self: &Arc<Self>,
        write: W,
    ) -> Option<W> {
        let slot = self.slot();
        let mut write = Some(write);
        if !self.try_push(&slot, &mut write) {
            return write;
        }
        // As in push: a writer that went idle before the line is woken.
        if self.idle.load(Ordering::SeqCst) {
            self.wake();
        }
        None
    }

    /// Appends one line written by `write`, once this thread's buffer has
    /// room; wakes the writer if it sleeps.
    pub(super) async fn push(self: &Arc<Self>, write: impl FnOnce(&mut String, &mut Clock)) {
        let slot = self.slot();
        let mut write = Some(write);
        if !self.try_push(&slot, &mut write) {
            loop {
                let room = self.room.notified();
                tokio::pin!(room);
                // Registered before the buffer is looked at again, so a
                // round that ends meanwhile is not missed.
                room.as_mut().enable();
                if self.try_push(&slot, &mut write) {
                    break;
                }
                self.wake();
                room.await;
            }
        }
        // After the line is in (the slot's unlock orders it before this
        // load): a writer that went idle before it either saw the line or
        // is woken here.
        if self.idle.load(Ordering::SeqCst) {
            self.wake();
        }
    }

    /// Writes the line if the buffer has room.
    fn try_push(
        &self,
        slot: &Slot,
        write: &mut Option<impl FnOnce(&mut String, &mut Clock)>,
    ) -> bool {
        let mut p = lock(slot);
        if p.text.len() >= self.capacity {
            return false;
        }
        let p = &mut *p;
        if let Some(write) = write.take() {
            write(&mut p.text, &mut p.clock);
            p.lines += 1;
        }
        true
    }

    fn wake(&self) {
        if let Some(t) = self.writer.get() {
            t.unpark();
        }
    }

    /// Hands each non-empty buffer's text and line count to `write`, the
    /// buffer emptied (its text swapped with `spare`).
    pub(super) fn take_each(&self, spare: &mut String, mut write: impl FnMut(&[u8], u64)) {
        let slots: Vec<Slot> = {
            let mut slots = lock(&self.slots);
            let all = slots.clone();
            // A slot held only here and by `all` belongs to a thread that
            // ended: forgotten once written.
            slots.retain(|s| Arc::strong_count(s) > 2 || lock(s).lines > 0);
            all
        };
        for slot in slots {
            let lines = {
                let mut p = lock(&slot);
                if p.lines == 0 {
                    continue;
                }
                spare.clear();
                // The buffer gets the spare's allocation: none is made.
                std::mem::swap(&mut p.text, spare);
                std::mem::take(&mut p.lines)
            };
            write(spare.as_bytes(), lines);
        }
    }

    /// Tells waiting requests that the buffers have room.
    pub(super) fn room_made(&self) {
        self.room.notify_waiters();
    }

    /// Parks the writer until a line arrives (or a stop), unless one did
    /// since its last round.
    pub(super) fn idle(&self) {
        self.idle.store(true, Ordering::SeqCst);
        let waiting = {
            let slots = lock(&self.slots);
            slots.iter().any(|s| lock(s).lines > 0)
        };
        if !waiting && !self.stopping() {
            std::thread::park();
        }
        self.idle.store(false, Ordering::SeqCst);
    }

    /// Asks the writer for a last round.
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake();
    }

    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}
