//! The allocator of every program that links the harness: mimalloc.
//!
//! Speed: a simulated world moves each message through turmoil's queues,
//! TLS records, hyper's buffers and WebSocket frames, allocating and freeing
//! small blocks at every hop; under glibc's malloc that was about a tenth of
//! a fuzz case's CPU (`perf record` of `fuzz --cases 1000 --jobs 1`).
//! Declared in the library so that the binary, its tests and its benches
//! all run on it.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
