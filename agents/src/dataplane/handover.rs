//! Items handed from a sender to a receiver that wakes the receiver only
//! while it waits. A sender in the receiver's own task (the closed loop
//! sends a request and then awaits its answer) does not wake that task as
//! it runs, as a channel's send would, costing it a poll per item.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Waker};

struct Shared<T> {
    items: Vec<T>,
    waker: Option<Waker>,
    waiting: bool,
    sender_gone: bool,
    receiver_gone: bool,
}

impl<T> Shared<T> {
    fn wake(&mut self) {
        if std::mem::take(&mut self.waiting) {
            if let Some(w) = &self.waker {
                w.wake_by_ref();
            }
        }
    }
}

/// The giving end; dropping it tells the receiver no more will come.
pub struct HandoverSender<T> {
    shared: Arc<Mutex<Shared<T>>>,
}

/// The taking end; dropping it drops what it did not take, and what is
/// sent after.
pub struct HandoverReceiver<T> {
    shared: Arc<Mutex<Shared<T>>>,
    /// The sender was gone at the last [`HandoverReceiver::take`].
    seen_sender_gone: bool,
    /// The items being taken, swapped out of the shared ones so they are
    /// handled outside the lock; kept for its capacity.
    taking: Vec<T>,
}

/// A new hand-over, nothing in it.
pub fn handover<T>() -> (HandoverSender<T>, HandoverReceiver<T>) {
    let shared = Arc::new(Mutex::new(Shared {
        items: Vec::new(),
        waker: None,
        waiting: false,
        sender_gone: false,
        receiver_gone: false,
    }));
    (
        HandoverSender {
            shared: shared.clone(),
        },
        HandoverReceiver {
            shared,
            seen_sender_gone: false,
            taking: Vec::new(),
        },
    )
}

fn lock<T>(shared: &Mutex<Shared<T>>) -> MutexGuard<'_, Shared<T>> {
    shared.lock().expect("hand-over lock")
}

impl<T> HandoverSender<T> {
    /// Hands `item` over; dropped at once if the receiver is gone.
    pub fn send(&self, item: T) {
        let mut shared = lock(&self.shared);
        if !shared.receiver_gone {
            shared.items.push(item);
            shared.wake();
        }
    }
}

impl<T> Drop for HandoverSender<T> {
    fn drop(&mut self) {
        let mut shared = lock(&self.shared);
        shared.sender_gone = true;
        shared.wake();
    }
}

impl<T> HandoverReceiver<T> {
    /// Takes every item handed over so far, in order, and says whether the
    /// sender is gone (then no more will come). Ends a wait.
    pub fn take(&mut self, each: impl FnMut(T)) -> bool {
        {
            let mut shared = lock(&self.shared);
            shared.waiting = false;
            std::mem::swap(&mut shared.items, &mut self.taking);
            self.seen_sender_gone = shared.sender_gone;
        }
        self.taking.drain(..).for_each(each);
        self.seen_sender_gone
    }

    /// Starts waiting: the next item, or the sender going, wakes `cx`.
    /// False, without waiting, if either happened since the last
    /// [`HandoverReceiver::take`]: take again.
    pub fn wait(&mut self, cx: &mut Context<'_>) -> bool {
        let mut shared = lock(&self.shared);
        if !shared.items.is_empty() || shared.sender_gone != self.seen_sender_gone {
            return false;
        }
        if !shared.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            shared.waker = Some(cx.waker().clone());
        }
        shared.waiting = true;
        true
    }
}

impl<T> Drop for HandoverReceiver<T> {
    fn drop(&mut self) {
        // Dropped outside the lock: an item's drop may do work of its own
        // (a stream's tells its connection).
        let (_items, _waker) = {
            let mut shared = lock(&self.shared);
            shared.receiver_gone = true;
            (std::mem::take(&mut shared.items), shared.waker.take())
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<CountingWaker>, Waker) {
        let count = Arc::new(CountingWaker::default());
        (count.clone(), Waker::from(count))
    }

    fn taken<T>(rx: &mut HandoverReceiver<T>) -> (Vec<T>, bool) {
        let mut items = Vec::new();
        let gone = rx.take(|i| items.push(i));
        (items, gone)
    }

    #[test]
    fn items_sent_while_the_receiver_waits_wake_it_once_and_arrive_in_order() {
        let (tx, mut rx) = handover();
        let (count, waker) = counting();
        assert_eq!(taken(&mut rx), (vec![], false));
        assert!(rx.wait(&mut Context::from_waker(&waker)));
        tx.send(1);
        tx.send(2);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(taken(&mut rx), (vec![1, 2], false));
    }

    #[test]
    fn an_item_sent_while_the_receiver_runs_wakes_nobody_and_is_taken_before_waiting() {
        let (tx, mut rx) = handover();
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert!(rx.wait(&mut cx));
        tx.send(1);
        assert_eq!(taken(&mut rx), (vec![1], false));
        // Between take and wait, as a closed loop's own send.
        tx.send(2);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(!rx.wait(&mut cx), "an item is waiting: take it first");
        assert_eq!(taken(&mut rx), (vec![2], false));
        assert!(rx.wait(&mut cx));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_receiver_that_took_after_its_wake_is_not_woken_by_the_next_item() {
        // The closed loop: it waits, its answer (not an item) wakes it, it
        // takes, and its own next send must not wake it again.
        let (tx, mut rx) = handover();
        let (count, waker) = counting();
        taken(&mut rx);
        assert!(rx.wait(&mut Context::from_waker(&waker)));
        assert_eq!(taken(&mut rx), (vec![], false));
        tx.send(1);
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        assert_eq!(taken(&mut rx), (vec![1], false));
    }

    #[test]
    fn the_latest_waiter_is_the_one_woken() {
        let (tx, mut rx) = handover();
        let (first, first_waker) = counting();
        let (second, second_waker) = counting();
        taken(&mut rx);
        assert!(rx.wait(&mut Context::from_waker(&first_waker)));
        assert!(rx.wait(&mut Context::from_waker(&second_waker)));
        tx.send(1);
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_sender_going_wakes_a_waiting_receiver_and_is_reported_once_taken() {
        let (tx, mut rx) = handover::<u8>();
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        taken(&mut rx);
        assert!(rx.wait(&mut cx));
        drop(tx);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(taken(&mut rx), (vec![], true));
        assert!(rx.wait(&mut cx), "the sender's going was seen: nothing new");
    }

    #[test]
    fn the_sender_going_between_take_and_wait_is_not_missed() {
        let (tx, mut rx) = handover::<u8>();
        let (_, waker) = counting();
        taken(&mut rx);
        drop(tx);
        assert!(!rx.wait(&mut Context::from_waker(&waker)));
        assert_eq!(taken(&mut rx), (vec![], true));
    }

    #[test]
    fn items_are_dropped_once_the_receiver_is_gone() {
        let (tx, rx) = handover();
        let item = Arc::new(());
        tx.send(item.clone());
        assert_eq!(Arc::strong_count(&item), 2);
        drop(rx);
        assert_eq!(
            Arc::strong_count(&item),
            1,
            "a held item is dropped with the receiver"
        );
        tx.send(item.clone());
        assert_eq!(
            Arc::strong_count(&item),
            1,
            "an item sent later is dropped at once"
        );
    }
}
