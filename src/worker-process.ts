/**
 * How a worker process is started: `npm run start:worker`, the dev stack, the tests and the bench
 * all use these, and a deployment should too (docs/operations.md).
 *
 * Both are about memory (issue 21). Node 24 sizes V8's young generation from the heap limit: with
 * the default 4 GiB limit each isolate gets two 64 MiB semi-spaces, and a worker has two isolates
 * (its main thread, and the SDK's workflow thread), so 256 MiB goes to short-lived objects where
 * Node 20 used 64. And glibc gives each thread that allocates at once (the SDK's Rust runtime,
 * libuv's pool, V8's helpers) an arena of its own, up to 8 per core, each keeping what was freed.
 * Measured with 1,000 grants held on Node 24: 1,030 MiB as Node starts it, 856 MiB with two
 * arenas, 581 MiB with both.
 */
export const WORKER_NODE_FLAGS = ['--max-semi-space-size=16'];
export const WORKER_ENV = { MALLOC_ARENA_MAX: '2' };
