// BullMQ counterpart of bench/queue/compare_test.go: enqueue rate (addBulk
// in batches of 1000), processing rate (one Worker, concurrency 64), Redis
// memory per waiting job, and add-to-start latency at a fixed rate.
//
//   source scripts/redis.sh; redis_start
//   cd bench/queue/bullmq && npm ci && node bench.mjs
//
// It uses database 14 of CONQ_TEST_REDIS_URL, flushed before and after.
import { Queue, Worker } from "bullmq";
import IORedis from "ioredis";
import { performance } from "node:perf_hooks";

const url = process.env.CONQ_TEST_REDIS_URL;
if (!url) {
  console.error("CONQ_TEST_REDIS_URL is not set; run `source scripts/redis.sh; redis_start` first");
  process.exit(process.env.CI || process.env.CONQ_REQUIRE_SERVERS ? 1 : 0);
}
const u = new URL(url);
const connection = {
  host: u.hostname,
  port: Number(u.port || 6379),
  username: decodeURIComponent(u.username) || undefined,
  password: decodeURIComponent(u.password) || undefined,
  db: 14,
  tls: u.protocol === "rediss:" ? {} : undefined,
  maxRetriesPerRequest: null,
};
const N = Number(process.env.CONQ_BENCH_TASKS || 100000);
const RATE = Number(process.env.CONQ_BENCH_RATE || 1000);
const SECONDS = Number(process.env.CONQ_BENCH_SECONDS || 5);
const CONCURRENCY = 64;
const now = () => performance.timeOrigin + performance.now();

const raw = new IORedis(connection);
async function usedMemory() {
  const info = await raw.info("memory");
  return Number(/used_memory:(\d+)/.exec(info)[1]);
}

async function processAll(name, n, onJob) {
  let done = 0;
  let finish;
  const finished = new Promise((r) => (finish = r));
  const start = now();
  const worker = new Worker(
    name,
    async (job) => {
      if (onJob) onJob(job);
      if (++done === n) finish();
    },
    { connection, concurrency: CONCURRENCY, removeOnComplete: { count: 0 }, removeOnFail: { count: 0 } },
  );
  await finished;
  const secs = (now() - start) / 1000;
  await worker.close();
  return secs;
}

async function main() {
  await raw.flushdb();
  const q = new Queue("bench", { connection });
  await q.waitUntilReady();

  // Enqueue.
  const before = await usedMemory();
  let t0 = now();
  for (let i = 0; i < N; i += 1000) {
    const jobs = [];
    for (let j = 0; j < Math.min(1000, N - i); j++) {
      jobs.push({ name: "noop", data: null, opts: { attempts: 6, removeOnComplete: true, removeOnFail: true } });
    }
    await q.addBulk(jobs);
  }
  const enqSecs = (now() - t0) / 1000;
  const mem = (await usedMemory()) - before;
  console.log(`BullMQ ${N} tasks: addBulk(1000) ${Math.round(N / enqSecs)} tasks/s, ${(mem / N).toFixed(1)} redis-B/task`);

  // Process what was enqueued.
  const procSecs = await processAll("bench", N);
  console.log(`BullMQ process (concurrency ${CONCURRENCY}): ${Math.round(N / procSecs)} tasks/s`);

  // Latency at a fixed rate, one add at a time.
  const lq = new Queue("lat", { connection });
  const n = RATE * SECONDS;
  const lat = [];
  const interval = 1000 / RATE;
  const producer = (async () => {
    const s = now();
    for (let i = 0; i < n; i++) {
      const wait = s + i * interval - now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await lq.add("noop", { t: now() }, { removeOnComplete: true, removeOnFail: true });
    }
  })();
  await processAll("lat", n, (job) => lat.push(now() - job.data.t));
  await producer;
  lat.sort((a, b) => a - b);
  const p = (x) => lat[Math.min(lat.length - 1, Math.floor(x * lat.length))].toFixed(2);
  console.log(`BullMQ latency at ${RATE}/s (${lat.length} samples): p50 ${p(0.5)}ms p99 ${p(0.99)}ms p99.9 ${p(0.999)}ms max ${p(1)}ms`);

  await q.close();
  await lq.close();
  await raw.flushdb();
  await raw.quit();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
