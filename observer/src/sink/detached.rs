//! A sink moved onto its own thread behind a bounded queue, so a slow reader (a paused pager on
//! stdout, a slow disk) never blocks the capture: when the queue is full the oldest event is
//! dropped and counted (`dropped`, which also counts the events still queued when the inner
//! sink fails); memory is bounded by the queue plus the one batch the writer thread holds
//! (twice `capacity` events at most). Used for stdout and files in live runs; the socket sink
//! has its own sender thread.

use super::{Counters, Sink, SinkError, again};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

#[derive(Default)]
struct State {
    queue: VecDeque<Value>,
    flush: bool,
    closing: bool,
    /// The inner sink's reader went away, or it failed.
    failed: Option<SinkError>,
    dropped: u64,
    inner: Counters,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `inner` on a background thread (see the module doc).
pub struct Detached {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    capacity: usize,
}

impl Detached {
    /// Starts the writer thread for `inner`, keeping at most `capacity` events queued.
    pub fn new(
        inner: Box<dyn Sink + Send>,
        capacity: usize,
        name: &str,
    ) -> Result<Self, SinkError> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let s2 = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("observer-{name}"))
            .spawn(move || run(inner, &s2))
            .map_err(|error| SinkError::Io {
                target: name.to_string(),
                error,
            })?;
        Ok(Detached {
            shared,
            thread: Some(thread),
            capacity: capacity.max(1),
        })
    }

    /// The inner sink's own error again (it names its target and the OS's reason).
    fn failure(st: &State) -> Option<SinkError> {
        st.failed.as_ref().map(again)
    }
}

fn run(mut inner: Box<dyn Sink + Send>, shared: &Shared) {
    loop {
        let (batch, flush, closing) = {
            let mut st = shared.lock();
            while st.queue.is_empty() && !st.flush && !st.closing {
                st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            let batch: Vec<Value> = st.queue.drain(..).collect();
            let flush = std::mem::take(&mut st.flush);
            (batch, flush, st.closing)
        };
        let mut result = Ok(());
        let mut written = 0;
        for e in &batch {
            result = inner.write(e);
            if result.is_err() {
                break;
            }
            written += 1;
        }
        if result.is_ok() && (flush || closing) {
            result = if closing {
                inner.finish()
            } else {
                inner.flush()
            };
        }
        let mut counters = Counters::new();
        inner.counters("", &mut counters);
        let mut st = shared.lock();
        st.inner = counters;
        if let Err(e) = result {
            st.failed = Some(e);
            // What this output took and will never write: the rest of the batch (the event
            // that failed included) and the queue behind it.
            st.dropped += (batch.len() - written + st.queue.len()) as u64;
            st.queue.clear();
            shared.wake.notify_all();
            return;
        }
        if closing && st.queue.is_empty() {
            shared.wake.notify_all();
            return;
        }
    }
}

impl Sink for Detached {
    fn write(&mut self, event: &Value) -> Result<(), SinkError> {
        let mut st = self.shared.lock();
        if let Some(e) = Self::failure(&st) {
            return Err(e);
        }
        if st.queue.len() >= self.capacity {
            st.queue.pop_front();
            st.dropped += 1;
        }
        st.queue.push_back(event.clone());
        drop(st);
        self.shared.wake.notify_one();
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        let mut st = self.shared.lock();
        if let Some(e) = Self::failure(&st) {
            return Err(e);
        }
        st.flush = true;
        drop(st);
        self.shared.wake.notify_one();
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.shared.lock().closing = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        match Self::failure(&self.shared.lock()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn counters(&self, prefix: &str, out: &mut Counters) {
        let st = self.shared.lock();
        out.push((format!("{prefix}.dropped"), st.dropped));
        for (k, v) in &st.inner {
            out.push((format!("{prefix}{k}"), *v));
        }
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Released yet, and what was written.
    type Gate = Arc<(Mutex<(bool, Vec<Value>)>, Condvar)>;

    /// A sink that blocks until released, then records.
    struct Slow(Gate);

    impl Sink for Slow {
        fn write(&mut self, e: &Value) -> Result<(), SinkError> {
            let (m, c) = &*self.0;
            let mut g = m.lock().unwrap();
            while !g.0 {
                g = c.wait(g).unwrap();
            }
            g.1.push(e.clone());
            Ok(())
        }
        fn finish(&mut self) -> Result<(), SinkError> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_reader_costs_the_oldest_events_not_the_writer() {
        let gate = Arc::new((Mutex::new((false, Vec::new())), Condvar::new()));
        let mut d = Detached::new(Box::new(Slow(Arc::clone(&gate))), 10, "slow").unwrap();
        // The writer never blocks, whatever the reader does.
        for i in 0..1000 {
            d.write(&json!({ "n": i })).unwrap();
        }
        gate.0.lock().unwrap().0 = true;
        gate.1.notify_all();
        d.finish().unwrap();
        let got = &gate.0.lock().unwrap().1;
        let mut c = Counters::new();
        d.counters("o", &mut c);
        let dropped = c.iter().find(|(k, _)| k == "o.dropped").unwrap().1;
        assert_eq!(
            got.len() as u64 + dropped,
            1000,
            "every event written or counted"
        );
        // Survivors: the queue (10) plus the batch the writer thread held when it stalled
        // (at most another 10).
        assert!(
            dropped >= 980,
            "at most twice the queue survives: {dropped}"
        );
        assert_eq!(got.last().unwrap()["n"], 999, "the newest are kept");
    }
}
