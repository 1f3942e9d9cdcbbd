// Starts the real `gatehouse` binary for one test file and finds reset mails
// in its outbox. Shared by the v11 and v10 client tests.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

export const ADMIN_EMAIL = "admin@e2e.test";
export const ADMIN_PASSWORD = "Admin-Passw0rd-e2e";

export interface Server {
  /** e.g. `http://127.0.0.1:40123` */
  origin: string;
  /** `${origin}/trpc` */
  trpcUrl: string;
  outboxDir: string;
  stop(): Promise<void>;
}

/** Where the binary is: `GATEHOUSE_BIN`, else `target/debug/gatehouse` of the repository. */
export function binaryPath(): string {
  const repo = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..", "..");
  return process.env.GATEHOUSE_BIN ?? join(repo, "target", "debug", "gatehouse");
}

/**
 * Spawns the server on a free port with a fresh SQLite database and outbox,
 * and resolves once it printed `gatehouse listening on http://…`.
 */
export async function startServer(extraEnv: Record<string, string> = {}): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-e2e-"));
  const outboxDir = join(dir, "outbox");
  const child: ChildProcess = spawn(binaryPath(), [], {
    cwd: dir,
    env: {
      ...process.env,
      GATEHOUSE_ADDR: "127.0.0.1:0",
      DATABASE_URL: `sqlite://${join(dir, "gatehouse.db")}`,
      JWT_SECRET: "e2e-secret-e2e-secret-e2e-secret-e2e-secret",
      BCRYPT_COST: "4",
      GATEHOUSE_OUTBOX_DIR: outboxDir,
      GATEHOUSE_ADMIN_EMAIL: ADMIN_EMAIL,
      GATEHOUSE_ADMIN_PASSWORD: ADMIN_PASSWORD,
      RUST_LOG: process.env.RUST_LOG ?? "warn",
      ...extraEnv,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
    if (stderr.length > 20_000) stderr = stderr.slice(-20_000);
  });
  const origin = await new Promise<string>((ok, fail) => {
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => fail(new Error(`gatehouse did not start in 60 s:\n${stderr}`)), 60_000);
    lines.on("line", (line) => {
      const m = /^gatehouse listening on (http:\/\/\S+)$/.exec(line.trim());
      if (m) {
        clearTimeout(timer);
        ok(m[1]!.replace(/\/$/, ""));
      }
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      fail(new Error(`cannot start ${binaryPath()}: ${e.message}`));
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`gatehouse exited with ${code} before listening:\n${stderr}`));
    });
  });
  return {
    origin,
    trpcUrl: `${origin}/trpc`,
    outboxDir,
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

/** Undoes quoted-printable soft breaks and `=XX` escapes (harmless on 7bit text). */
function decodeQuotedPrintable(text: string): string {
  return text
    .replace(/=\r?\n/g, "")
    .replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** The reset token of the newest outbox mail addressed to `email`, if any yet. */
function findResetToken(outboxDir: string, email: string): string | null {
  let names: string[];
  try {
    names = readdirSync(outboxDir);
  } catch {
    return null; // the outbox is created with the first mail
  }
  const files = names
    .filter((f) => f.endsWith(".eml"))
    .map((f) => join(outboxDir, f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  for (const file of files) {
    const mail = decodeQuotedPrintable(readFileSync(file, "utf8"));
    const to = /^To:(.*)$/im.exec(mail)?.[1] ?? "";
    if (!to.toLowerCase().includes(email.toLowerCase())) continue;
    const token = /^Token: (\S+)\s*$/m.exec(mail)?.[1];
    if (token) return token;
  }
  return null;
}

/**
 * Waits (up to 15 s) for the reset mail to `email`: the server may send it
 * after answering, so the response can arrive before the file.
 */
export async function resetTokenFor(outboxDir: string, email: string): Promise<string> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const token = findResetToken(outboxDir, email);
    if (token) return token;
    if (Date.now() > deadline) {
      throw new Error(`no reset mail with a "Token:" line for ${email} in ${outboxDir}`);
    }
    await new Promise((ok) => setTimeout(ok, 50));
  }
}

/** A unique address per test, so tests sharing a server never collide. */
let counter = 0;
export function freshEmail(tag: string): string {
  counter += 1;
  return `${tag}-${process.pid}-${counter}-${Date.now()}@e2e.test`.toLowerCase();
}

export const PASSWORD = "Sturdy-Passphrase-42";
export const NEW_PASSWORD = "Another-Passphrase-43";
