/**
 * The token store: the access tokens pulsedb has issued, kept durably as SHA-256 hashes.
 *
 * Contract:
 * - A token string is `pdb_` followed by 64 hex digits (256 random bits from the system CSPRNG).
 *   The store never keeps it: only its SHA-256 hash, as the key of a Map (lookup is constant time in
 *   the number of tokens) and in the file.
 * - The file is `<dataDir>/auth/tokens.json`, replaced atomically (temp file, fsync, rename, fsync
 *   of the directory) on every change; a change is visible to {@link TokenStore.lookup} only once it
 *   is durable, and {@link TokenStore.create} / {@link TokenStore.revoke} resolve only then. A crash
 *   at any moment leaves the old or the new set of tokens, never a mix. Changes are serialised.
 * - A damaged file is never guessed at: {@link TokenStore.load} throws, naming it.
 *
 * @module
 */
import * as crypto from "node:crypto";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { ensureDir, writeFileAtomic } from "./fsutil.ts";

/** What a token may do: `read` (GET), `write` (POST), `delete` (DELETE) readings, `metrics` (GET /metrics). */
export const SCOPES = ["read", "write", "delete", "metrics"] as const;
/** One scope. */
export type Scope = (typeof SCOPES)[number];

/** The prefix of every token string (secret scanners can find leaked ones by it). */
export const TOKEN_PREFIX = "pdb_";
/** The subdirectory of the data directory that holds the token file. */
export const AUTH_DIR = "auth";
/** The token file's name inside {@link AUTH_DIR}. */
export const TOKEN_FILE = "tokens.json";

/** An issued token, as kept in memory (the secret is not in it). */
export interface TokenRecord {
  /** Public identifier (16 hex digits), used to list and revoke the token and in audit lines. */
  readonly id: string;
  readonly name: string;
  /** The users whose readings the token may touch, or "*" for every user. */
  readonly users: "*" | ReadonlySet<string>;
  readonly scopes: ReadonlySet<Scope>;
  /** Epoch ms from which the token is refused, or null (never expires). */
  readonly expiresAt: number | null;
  readonly createdAt: number;
}

/** What a new token is given. */
export interface NewToken {
  name: string;
  users: "*" | readonly string[];
  scopes: readonly Scope[];
  expiresAt: number | null;
}

interface StoredToken {
  id: string;
  sha256: string;
  name: string;
  users: "*" | string[];
  scopes: Scope[];
  expires_at: number | null;
  created_at: number;
}

/**
 * The SHA-256 of a token string, hex (the store's key).
 *
 * @example
 * ```ts
 * hashToken("pdb_00"); // "6f3c..." (64 hex digits)
 * ```
 */
export function hashToken(token: string): string {
  return oneShotHash !== undefined
    ? oneShotHash("sha256", token, "hex")
    : createHash("sha256").update(token).digest("hex");
}

/** `crypto.hash` (Node >= 20.12, Deno 2): a one-shot digest, several times cheaper than a Hash object. */
const oneShotHash = (crypto as { hash?: (algorithm: string, data: string, encoding: "hex") => string }).hash;

/**
 * A fresh token string: `pdb_` and 64 hex digits (256 random bits).
 *
 * @example
 * ```ts
 * newTokenString(); // "pdb_9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
 * ```
 */
export function newTokenString(): string {
  return TOKEN_PREFIX + randomBytes(32).toString("hex");
}

/**
 * The durable set of issued tokens.
 *
 * @example
 * ```ts
 * const store = TokenStore.load("./data");
 * const { token, record } = await store.create({ name: "ward 3", users: ["u1"], scopes: ["write"], expiresAt: null });
 * store.lookup(hashToken(token)) === record; // true
 * await store.revoke(record.id);             // true; lookup now answers undefined
 * ```
 */
export class TokenStore {
  readonly #dir: string;
  readonly #file: string;
  /** sha256 hex -> record. */
  readonly #byHash = new Map<string, TokenRecord>();
  /** id -> stored form (its hash included). */
  readonly #byId = new Map<string, StoredToken>();
  #tail: Promise<unknown> = Promise.resolve();
  readonly #now: () => number;

  private constructor(dataDir: string, now: () => number) {
    this.#dir = path.join(dataDir, AUTH_DIR);
    this.#file = path.join(this.#dir, TOKEN_FILE);
    this.#now = now;
  }

  /**
   * Reads the token file of `dataDir` (none yet: an empty store).
   *
   * @throws Error naming the file when it cannot be read or is not a token file.
   */
  static load(dataDir: string, now: () => number = Date.now): TokenStore {
    const store = new TokenStore(dataDir, now);
    let text: string;
    try {
      text = fs.readFileSync(store.#file, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return store;
      throw new Error(`cannot read the token file ${store.#file}: ${code ?? (err as Error).message}`);
    }
    let tokens: StoredToken[];
    try {
      tokens = parseFile(JSON.parse(text));
    } catch (err) {
      throw new Error(
        `the token file ${store.#file} is damaged (${(err as Error).message}); restore it from a backup, ` +
          `or move it away to start with no tokens but the admin token`,
      );
    }
    for (const t of tokens) store.#add(t);
    return store;
  }

  /** The record whose token hashes to `sha256Hex`, if it is issued and not revoked (expiry is the caller's). */
  lookup(sha256Hex: string): TokenRecord | undefined {
    return this.#byHash.get(sha256Hex);
  }

  /** Every issued token, oldest first. */
  list(): TokenRecord[] {
    return [...this.#byHash.values()];
  }

  /** How many tokens are issued. */
  get size(): number {
    return this.#byHash.size;
  }

  /**
   * Issues a token; resolves once it is durable. The token string is returned here only.
   */
  create(spec: NewToken): Promise<{ token: string; record: TokenRecord }> {
    return this.#serial(async () => {
      const token = newTokenString();
      let id: string;
      do id = randomBytes(8).toString("hex"); while (this.#byId.has(id));
      const stored: StoredToken = {
        id,
        sha256: hashToken(token),
        name: spec.name,
        users: spec.users === "*" ? "*" : [...new Set(spec.users)],
        scopes: SCOPES.filter((s) => spec.scopes.includes(s)),
        expires_at: spec.expiresAt,
        created_at: this.#now(),
      };
      await this.#persist([...this.#byId.values(), stored]);
      return { token, record: this.#add(stored) };
    });
  }

  /** Revokes a token; resolves true once the revocation is durable, false for an unknown id. */
  revoke(id: string): Promise<boolean> {
    return this.#serial(async () => {
      const stored = this.#byId.get(id);
      if (stored === undefined) return false;
      await this.#persist([...this.#byId.values()].filter((t) => t.id !== id));
      this.#byId.delete(id);
      this.#byHash.delete(stored.sha256);
      return true;
    });
  }

  #add(t: StoredToken): TokenRecord {
    const record: TokenRecord = {
      id: t.id,
      name: t.name,
      users: t.users === "*" ? "*" : new Set(t.users),
      scopes: new Set(t.scopes),
      expiresAt: t.expires_at,
      createdAt: t.created_at,
    };
    this.#byId.set(t.id, t);
    this.#byHash.set(t.sha256, record);
    return record;
  }

  async #persist(tokens: StoredToken[]): Promise<void> {
    await ensureDir(this.#dir);
    const text = JSON.stringify({ format: 1, tokens }, null, 1) + "\n";
    await writeFileAtomic(this.#file, new TextEncoder().encode(text));
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn, fn);
    this.#tail = run.catch(() => {});
    return run;
  }
}

const HEX64 = /^[0-9a-f]{64}$/;

function parseFile(doc: unknown): StoredToken[] {
  const d = doc as { format?: unknown; tokens?: unknown };
  if (typeof d !== "object" || d === null || d.format !== 1 || !Array.isArray(d.tokens)) {
    throw new Error("not a format 1 token file");
  }
  const seen = new Set<string>();
  return d.tokens.map((raw, i) => {
    const t = raw as StoredToken;
    const ok = typeof t === "object" && t !== null && typeof t.id === "string" && !seen.has(t.id) &&
      typeof t.sha256 === "string" && HEX64.test(t.sha256) && typeof t.name === "string" &&
      (t.users === "*" || (Array.isArray(t.users) && t.users.every((u) => typeof u === "string"))) &&
      Array.isArray(t.scopes) && t.scopes.every((s) => (SCOPES as readonly string[]).includes(s)) &&
      (t.expires_at === null || Number.isSafeInteger(t.expires_at)) && Number.isSafeInteger(t.created_at);
    if (!ok) throw new Error(`token ${i} is malformed`);
    seen.add(t.id);
    return t;
  });
}
