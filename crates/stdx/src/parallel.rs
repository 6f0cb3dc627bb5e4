//! An order-keeping parallel map on scoped threads.

/// Maps `f` over `items` on up to `threads` threads (0: as many as the machine has), keeping
/// the order of `items` in the result. Items are dealt out in turn, so large and small ones
/// spread over the threads.
pub fn parallel_map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let f = &f;
    let share = move |t: usize| items.iter().skip(t).step_by(threads).map(f).collect::<Vec<R>>();
    // The calling thread takes the first share: one thread fewer to start, and what it
    // allocates stays in its own heap.
    let mut parts: Vec<Vec<R>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..threads).map(|t| scope.spawn(move || share(t))).collect();
        let mut parts = vec![share(0)];
        parts.extend(handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))));
        parts
    });
    let mut iters: Vec<_> = parts.iter_mut().map(|p| p.drain(..)).collect();
    let mut out = Vec::with_capacity(items.len());
    for i in 0..items.len() {
        if let Some(r) = iters[i % threads].next() {
            out.push(r);
        }
    }
    out
}
