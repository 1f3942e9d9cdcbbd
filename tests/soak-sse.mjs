#!/usr/bin/env node
// Many `auth.events` streams at once, and whether they leak: a measurement of
// the real `gatehouse` binary, not a timed test.
//
//   tests/soak-sse.mjs                          1000 streams, 20 users, 2 rounds
//   tests/soak-sse.mjs --streams 2000 --users 40 --rounds 3
//   tests/soak-sse.mjs --bin target/release/gatehouse
//   tests/soak-sse.mjs --database-url postgres://postgres@127.0.0.1:5432/soak
//
// Each round opens every stream (plain node:http, one socket per stream, the
// token as a bearer header), waits for all of them to be `connected`, sends
// a burst of `auth.updateProfile` calls (each user's streams must all get
// every event: none lost, none repeated), then closes every socket. The
// server's VmRSS (/proc/<pid>/status) and CPU time (utime + stime of
// /proc/<pid>/stat) are read before, with all open, after the burst and
// after all closed; `gatehouse_subscriptions_open` comes from GET /metrics.
//
// It fails (exit 1) only on wrong answers and on leaks: the gauge must be 0
// after each round, and the RSS after the last round's close may exceed the
// first round's by at most 10 % + 16 MiB. Timings and figures are printed,
// never asserted. Bounded by --limit seconds (90).
//
// Needs Node 20 and nothing from npm. Raises its own open-files limit (and
// the server's, through its start) when the soft limit is too low.
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values: args } = parseArgs({
  options: {
    streams: { type: "string", default: "1000" },
    users: { type: "string", default: "20" },
    rounds: { type: "string", default: "2" },
    burst: { type: "string", default: "5", description: "updateProfile calls per user per round" },
    bin: { type: "string" },
    "database-url": { type: "string" },
    limit: { type: "string", default: "90" },
  },
});
const STREAMS = Number(args.streams);
const USERS = Number(args.users);
const ROUNDS = Number(args.rounds);
const BURST = Number(args.burst);
const LIMIT_S = Number(args.limit);
const PER_USER = Math.ceil(STREAMS / USERS);
const PASSWORD = "Soak-Sse-Passw0rd-42";
const MiB = 1024 * 1024;

// ------------------------------------------------------------ fd limit
function openFilesLimit() {
  const line = readFileSync("/proc/self/limits", "utf8")
    .split("\n")
    .find((l) => l.startsWith("Max open files"));
  const [soft, hard] = line.trim().split(/\s+/).slice(3, 5);
  const n = (v) => (v === "unlimited" ? Infinity : Number(v));
  return { soft: n(soft), hard: n(hard) };
}
{
  const need = STREAMS + 256;
  const { soft, hard } = openFilesLimit();
  if (soft < need && !process.env.SOAK_SSE_REEXEC) {
    if (hard < need) {
      console.error(`open-files hard limit ${hard} < ${need} needed for ${STREAMS} streams`);
      process.exit(1);
    }
    // Node cannot raise its own limit: run again under `ulimit -n`.
    console.log(`raising the open-files limit from ${soft} to ${need}`);
    const again = spawnSync(
      "sh",
      ["-c", `ulimit -n ${need} && exec "$0" "$@"`, process.execPath, ...process.argv.slice(1)],
      { stdio: "inherit", env: { ...process.env, SOAK_SSE_REEXEC: "1" } },
    );
    process.exit(again.status ?? 1);
  }
}

// ------------------------------------------------------------ server
function binary() {
  if (args.bin) return resolve(args.bin);
  if (process.env.GATEHOUSE_BIN) return process.env.GATEHOUSE_BIN;
  const release = join(ROOT, "target/release/gatehouse");
  return existsSync(release) ? release : join(ROOT, "target/debug/gatehouse");
}

async function startServer() {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-soak-sse-"));
  const env = {
    PATH: process.env.PATH ?? "",
    GATEHOUSE_ADDR: "127.0.0.1:0",
    DATABASE_URL: args["database-url"] ?? `sqlite://${join(dir, "gatehouse.db")}`,
    JWT_SECRET: "soak-sse-secret-soak-sse-secret-0123456",
    BCRYPT_COST: "4",
    GATEHOUSE_OUTBOX_DIR: join(dir, "outbox"),
    GATEHOUSE_MAX_SUBSCRIPTIONS_PER_USER: String(PER_USER),
    GATEHOUSE_MAX_SUBSCRIPTIONS: String(Math.max(10_000, STREAMS + USERS)),
    RUST_LOG: process.env.RUST_LOG ?? "warn",
  };
  const child = spawn(binary(), [], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (c) => {
    stderr = (stderr + c).slice(-20_000);
  });
  const origin = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`gatehouse did not start in 30 s:\n${stderr}`)), 30_000);
    createInterface({ input: child.stdout }).on("line", (line) => {
      const m = /^gatehouse listening on (http:\/\/\S+)$/.exec(line.trim());
      if (m) {
        clearTimeout(timer);
        ok(m[1].replace(/\/$/, ""));
      }
    });
    child.on("error", (e) => fail(new Error(`cannot start ${binary()}: ${e.message}`)));
    child.on("exit", (code) => fail(new Error(`gatehouse exited with ${code}:\n${stderr}`)));
  });
  return {
    origin,
    pid: child.pid,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((ok) => child.once("exit", ok));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ------------------------------------------------------------ /proc
const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

function rssBytes(pid) {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("VmRSS:"));
  return Number(line.split(/\s+/)[1]) * 1024;
}

/** utime + stime of the process, in seconds. */
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

function threads(pid) {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("Threads:"));
  return Number(line.split(/\s+/)[1]);
}

// ------------------------------------------------------------ calls
async function mutation(origin, path, input, token) {
  const res = await fetch(`${origin}/trpc/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ json: input }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, `${path}: ${res.status} ${JSON.stringify(body)}`);
  return body.result.data.json;
}

async function openGauge(origin) {
  const text = await (await fetch(`${origin}/metrics`)).text();
  const m = /^gatehouse_subscriptions_open(?:\{[^}]*\})? (\S+)$/m.exec(text);
  return m ? Number(m[1]) : 0; // not registered before the first subscription
}

// ------------------------------------------------------------ streams
const agent = new Agent({ keepAlive: false, maxSockets: Infinity });

/** One `auth.events` stream over its own socket, parsed as SSE. */
class Stream {
  constructor(origin, token, onChange) {
    this.connected = false;
    this.ids = [];
    this.errors = [];
    this.ended = false;
    this.closedByUs = false;
    const url = `${origin}/trpc/auth.events`;
    this.req = request(url, {
      agent,
      headers: { accept: "text/event-stream", authorization: `Bearer ${token}` },
    });
    this.req.on("response", (res) => {
      if (res.statusCode !== 200) this.errors.push(`HTTP ${res.statusCode}`);
      res.setEncoding("utf8");
      let buffer = "";
      let event = { type: "", data: "", id: null };
      res.on("data", (chunk) => {
        buffer += chunk;
        const lines = buffer.split(/\r\n|\n|\r/);
        buffer = lines.pop();
        for (const line of lines) {
          if (line === "") {
            if (event.data || event.type) this.dispatch(event);
            event = { type: "", data: "", id: null };
          } else if (line.startsWith("event:")) event.type = line.slice(6).trim();
          else if (line.startsWith("data:")) event.data += line.slice(5).trimStart();
          else if (line.startsWith("id:")) event.id = line.slice(3).trim();
        }
        onChange();
      });
      res.on("end", () => {
        this.ended = true;
        onChange();
      });
      res.on("error", () => {});
    });
    this.req.on("error", (e) => {
      if (!this.closedByUs) this.errors.push(e.message);
      onChange();
    });
    this.req.end();
  }

  dispatch(event) {
    if (event.type === "connected") this.connected = true;
    else if (event.type === "serialized-error") this.errors.push(event.data);
    else if (event.type === "" && event.data) this.ids.push(event.id);
  }

  close() {
    this.closedByUs = true;
    this.req.destroy();
  }
}

/** Resolves when `ready()` holds; `onChange` wakes it. */
function waiter() {
  let wake = () => {};
  return {
    onChange: () => wake(),
    async until(what, ready, ms) {
      const deadline = Date.now() + ms;
      while (!ready()) {
        if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        await new Promise((ok) => {
          wake = ok;
          setTimeout(ok, 100);
        });
      }
    },
  };
}

// ------------------------------------------------------------ main
const rows = [];
function sample(server, phase, extra = {}) {
  const row = { phase, rss: rssBytes(server.pid), cpu: cpuSeconds(server.pid), threads: threads(server.pid), ...extra };
  const prev = rows.at(-1);
  row.cpuDelta = prev ? row.cpu - prev.cpu : null;
  rows.push(row);
  return row;
}

function printTable() {
  const pad = (s, n) => String(s).padStart(n);
  console.log(
    `\n${"phase".padEnd(34)}${pad("RSS MiB", 9)}${pad("CPU s", 8)}${pad("ΔCPU s", 8)}${pad("threads", 9)}${pad("open", 7)}  note`,
  );
  for (const r of rows) {
    console.log(
      `${r.phase.padEnd(34)}${pad((r.rss / MiB).toFixed(1), 9)}${pad(r.cpu.toFixed(2), 8)}` +
        `${pad(r.cpuDelta === null ? "-" : r.cpuDelta.toFixed(2), 8)}${pad(r.threads, 9)}${pad(r.open ?? "", 7)}  ${r.note ?? ""}`,
    );
  }
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** BURST updateProfile calls per user, users in parallel; their latencies. */
async function burst(origin, users, tag) {
  const ms = [];
  await Promise.all(
    users.map(async (user, u) => {
      for (let k = 0; k < BURST; k++) {
        const t = performance.now();
        await mutation(origin, "auth.updateProfile", { firstName: `${tag}U${u}K${k}` }, user.token);
        ms.push(performance.now() - t);
      }
    }),
  );
  ms.sort((a, b) => a - b);
  const at = (q) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))].toFixed(0);
  return `call p50 ${at(0.5)} ms, p95 ${at(0.95)} ms`;
}

let running = null;
async function main() {
  const server = await startServer();
  running = server;
  console.log(
    `gatehouse pid ${server.pid} (${binary()}) at ${server.origin}: ` +
      `${STREAMS} streams (${USERS} users x ${PER_USER}), ${ROUNDS} rounds, burst ${BURST} updates/user`,
  );
  // Timings depend on what else the machine runs (the clients share it too).
  console.log(`load average at start: ${loadavg()}`);
  try {
    const users = [];
    for (let u = 0; u < USERS; u++) {
      const reg = await mutation(server.origin, "auth.register", {
        email: `soak-sse-${u}-${Date.now()}@example.com`,
        password: PASSWORD,
        firstName: "Soak",
        lastName: `Sse${u}`,
      });
      users.push({ token: reg.token });
    }
    await sleep(500);
    sample(server, "start (idle, users registered)", { open: await openGauge(server.origin) });
    // The same burst with no stream open, for comparison.
    const t = Date.now();
    const calls = await burst(server.origin, users, "R0");
    sample(server, "burst with no stream open", {
      open: await openGauge(server.origin),
      note: `${USERS * BURST} calls in ${Date.now() - t} ms (${calls})`,
    });

    const closedRss = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const w = waiter();
      // Open every stream.
      const t0 = Date.now();
      const streams = [];
      for (let i = 0; i < STREAMS; i++) {
        const user = i % USERS;
        streams.push({ user, s: new Stream(server.origin, users[user].token, w.onChange) });
      }
      await w.until(
        `${STREAMS} streams connected`,
        () => {
          const bad = streams.find((x) => x.s.errors.length || x.s.ended);
          if (bad) throw new Error(`a stream failed: ${bad.s.errors.join("; ") || "ended"}`);
          return streams.every((x) => x.s.connected);
        },
        30_000,
      );
      const openMs = Date.now() - t0;
      await sleep(500);
      const open = await openGauge(server.origin);
      assert.equal(open, STREAMS, "the gauge counts every open stream");
      sample(server, `round ${round}: ${STREAMS} open`, { open, note: `all connected in ${openMs} ms` });

      if (round === 1) {
        // The per-user cap holds: one more for a user at its cap is refused.
        const extra = new Stream(server.origin, users[0].token, w.onChange);
        await w.until("the extra stream's answer", () => extra.errors.length || extra.ended, 10_000);
        const refused = extra.errors.join(" ");
        extra.close();
        assert.match(refused, /TOO_MANY_REQUESTS/, `over the per-user cap: ${refused}`);
        console.log(`stream ${PER_USER + 1} of one user: refused with TOO_MANY_REQUESTS`);
      }

      // A burst: BURST profile updates per user, users in parallel.
      const t1 = Date.now();
      const calls = await burst(server.origin, users, `R${round}`);
      const callsMs = Date.now() - t1;
      await w.until(`${STREAMS * BURST} events delivered`, () => streams.every((x) => x.s.ids.length >= BURST), 30_000);
      const deliveredMs = Date.now() - t1;
      await sleep(300);
      for (const { s } of streams) {
        assert.equal(s.ids.length, BURST, `every stream gets each of its user's events once: ${s.ids}`);
        assert.equal(new Set(s.ids).size, BURST, "distinct ids");
        assert.deepEqual(s.errors, []);
      }
      // Streams of one user see the same ids in the same order.
      for (let u = 0; u < USERS; u++) {
        const mine = streams.filter((x) => x.user === u).map((x) => x.s.ids.join(","));
        assert.equal(new Set(mine).size, 1, `user ${u}: all streams agree`);
      }
      sample(server, `round ${round}: burst delivered`, {
        open: await openGauge(server.origin),
        note: `${USERS * BURST} calls in ${callsMs} ms (${calls}), ${STREAMS * BURST} events delivered in ${deliveredMs} ms`,
      });

      // Everyone goes away.
      const t2 = Date.now();
      for (const { s } of streams) s.close();
      let gauge = -1;
      for (let i = 0; i < 150; i++) {
        gauge = await openGauge(server.origin);
        if (gauge === 0) break;
        await sleep(100);
      }
      const releasedMs = Date.now() - t2;
      assert.equal(gauge, 0, `gatehouse_subscriptions_open after round ${round}'s clients left`);
      await sleep(1000);
      const row = sample(server, `round ${round}: all closed`, {
        open: gauge,
        note: `gauge at 0 ${releasedMs} ms after closing`,
      });
      closedRss.push(row.rss);
    }
    printTable();

    const opened = rows.find((r) => r.phase === `round 1: ${STREAMS} open`);
    const idle = rows[1];
    console.log(
      `\nper open stream: ~${((opened.rss - idle.rss) / STREAMS / 1024).toFixed(1)} KiB RSS; ` +
        `opening ${STREAMS}: ${opened.cpuDelta.toFixed(2)} s CPU`,
    );
    const first = closedRss[0];
    const last = closedRss.at(-1);
    // 1000 open streams take ~60 MiB (debug build), so a leak of even a
    // quarter of that per round shows; allocator noise (±10 MiB) does not.
    const allowed = first * 1.1 + 16 * MiB;
    console.log(
      `leak check: RSS after round 1 ${(first / MiB).toFixed(1)} MiB, after round ${ROUNDS} ${(last / MiB).toFixed(1)} MiB ` +
        `(allowed up to ${(allowed / MiB).toFixed(1)} MiB)`,
    );
    console.log(`load average at the end: ${loadavg()}`);
    assert.ok(last <= allowed, "RSS keeps growing from round to round");
    console.log("soak-sse: passed");
  } catch (e) {
    printTable();
    console.error(`gatehouse stderr (tail):\n${server.stderr().slice(-4000)}`);
    throw e;
  } finally {
    await server.stop();
  }
}

const watchdog = setTimeout(() => {
  console.error(`soak-sse: over --limit ${LIMIT_S} s, giving up`);
  printTable();
  if (running) process.kill(running.pid, "SIGKILL");
  process.exit(1);
}, LIMIT_S * 1000);
try {
  await main();
} catch (e) {
  console.error(e);
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
  agent.destroy();
}
