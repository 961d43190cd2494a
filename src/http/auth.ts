/**
 * Access control over HTTP (`PULSE_AUTH=on`): bearer tokens, scopes, users, and the audit line.
 *
 * Contract:
 * - Protected routes: `/metrics/heart-rate` (any method), `GET /metrics`, `/tokens` and below. Every
 *   other path (`/health`, `/ready`, `/openapi.json`, the dashboard at `/`, unknown paths) is open.
 * - A protected request needs `Authorization: Bearer <token>`. Missing, not a Bearer token, unknown,
 *   expired or revoked: 401 problem JSON with `WWW-Authenticate: Bearer ...`. The admin token may do
 *   everything; another token needs the method's scope (GET/HEAD `read`, POST `write`, DELETE
 *   `delete`; `metrics` for `/metrics`) and, for readings, every `user_id` in its users; `/tokens`
 *   is the admin token's only. Otherwise 403 problem JSON. Neither answer depends on whether a user
 *   exists or has data.
 * - GET and DELETE name their user in the query (`user_id`, every occurrence is checked) and are
 *   checked here, before the handler. A POST names its users in the body: the handler calls
 *   {@link AccessControl.checkReadings} after parsing and before writing (a batch with one foreign
 *   reading: 403, nothing stored). Every handler that writes readings must make that call.
 * - Cost: one SHA-256 of the presented token, one constant-time comparison with the admin token's
 *   hash, one Map lookup by hash (constant time in the number of tokens), one audit line.
 *
 * @module
 */
import * as crypto from "node:crypto";
import { Buffer } from "node:buffer";
import type { Context, MiddlewareHandler } from "hono";
import type { Reading } from "../reading.ts";
import { hashToken, type Scope, SCOPES, type TokenRecord, type TokenStore } from "../storage/token-store.ts";
import type { AuditEntry, AuditLog } from "./audit.ts";
import { problem, problemResponse } from "./problem.ts";
import { readBody } from "./read-body.ts";

/** Who is making a request: the admin, or an issued token's record. */
export interface Principal {
  /** Token id, or "admin". */
  readonly id: string;
  readonly name: string;
  readonly users: "*" | ReadonlySet<string>;
  readonly scopes: ReadonlySet<Scope>;
}

/** Why a request was not authenticated. */
export type Denial = "missing" | "malformed" | "unknown" | "expired";

/** What the access control needs. */
export interface AccessControlOptions {
  /** The admin token (its value; only its hash is kept). */
  adminToken: string;
  store: TokenStore;
  audit: AuditLog;
  /** Largest body read (and dropped) before a 401/403 answer to a request with a body. */
  maxBodyBytes: number;
  /** The clock for expiry (tests inject one). */
  now?: () => number;
}

const DATA_ROUTE = "/metrics/heart-rate";
const ADMIN_ID = "admin";
/** The context variable holding a request's {@link RequestState}. */
const STATE_KEY = "pulsedb.access";
const TOKEN_ID = /^[0-9a-f]{16}$/;
const BEARER = /^Bearer +([\x21-\x7e]+) *$/i;
/** At most this many distinct users of a batch are named in its audit line. */
const AUDIT_USERS = 100;

const REALM = 'Bearer realm="pulsedb"';
const CHALLENGE: Record<Denial, string> = {
  missing: REALM,
  malformed: `${REALM}, error="invalid_request"`,
  unknown: `${REALM}, error="invalid_token"`,
  expired: `${REALM}, error="invalid_token"`,
};
const DETAIL: Record<Denial, string> = {
  missing: "This route needs an Authorization header with a bearer token (Authorization: Bearer <token>).",
  malformed: "The Authorization header is not a bearer token (Authorization: Bearer <token>).",
  unknown: "The bearer token is not valid: unknown, expired or revoked.",
  expired: "The bearer token is not valid: unknown, expired or revoked.",
};
const USER_FORBIDDEN = "This token may not access the readings of the requested user.";
const BATCH_FORBIDDEN = "This token may not write readings for at least one user of the batch; nothing was stored.";

interface RequestState {
  principal: Principal;
  users: string | string[] | null;
}

/**
 * Bearer-token access control: a Hono middleware plus the body check for POST.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { TokenStore } from "../storage/token-store.ts";
 * import { AuditLog } from "./audit.ts";
 * const app = new Hono();
 * const adminToken = "a".repeat(32);
 * const store = TokenStore.load("/var/lib/pulsedb");
 * const access = new AccessControl({ adminToken, store, audit: AuditLog.toStderr(), maxBodyBytes: 4 << 20 });
 * app.use("*", access.middleware);
 * app.post("/metrics/heart-rate", (c) => {
 *   const readings = [{ userId: "u1", deviceId: "device_a", ts: 0, heartRate: 75 }]; // parsed from the body
 *   const denied = access.checkReadings(c, readings);
 *   if (denied) return denied;
 *   return c.json({ status: "accepted" });
 * });
 * ```
 */
export class AccessControl {
  readonly store: TokenStore;
  readonly now: () => number;
  /** SHA-256 of the admin token, hex digits as bytes (compared with timingSafeEqual). */
  readonly #adminHash: Buffer;
  readonly #audit: AuditLog;
  readonly #maxBodyBytes: number;
  readonly #admin: Principal = { id: ADMIN_ID, name: ADMIN_ID, users: "*", scopes: new Set(SCOPES) };

  constructor(opts: AccessControlOptions) {
    this.store = opts.store;
    this.now = opts.now ?? Date.now;
    this.#adminHash = Buffer.from(hashToken(opts.adminToken), "latin1");
    this.#audit = opts.audit;
    this.#maxBodyBytes = opts.maxBodyBytes;
  }

  /**
   * Who presents `authorization` (the header's value), or why nobody does.
   *
   * @example
   * ```ts
   * import { TokenStore } from "../storage/token-store.ts";
   * import { AuditLog } from "./audit.ts";
   * const store = TokenStore.load("/var/lib/pulsedb");
   * const access = new AccessControl({ adminToken: "a".repeat(32), store, audit: AuditLog.toStderr(), maxBodyBytes: 1024 });
   * access.authenticate(undefined);           // { denial: "missing" }
   * access.authenticate("Bearer pdb_0123..."); // the token's record, or { denial: "unknown" | "expired" }
   * ```
   */
  authenticate(authorization: string | undefined): Principal | { denial: Denial; record?: TokenRecord } {
    if (authorization === undefined) return { denial: "missing" };
    const m = BEARER.exec(authorization);
    if (m === null) return { denial: "malformed" };
    const hash = hashToken(m[1]);
    // Both sides are 64 hex digits: the comparison takes the same time wherever they differ.
    if (crypto.timingSafeEqual(Buffer.from(hash, "latin1"), this.#adminHash)) return this.#admin;
    const record = this.store.lookup(hash);
    if (record === undefined) return { denial: "unknown" };
    if (record.expiresAt !== null && this.now() >= record.expiresAt) return { denial: "expired", record };
    return record;
  }

  /** The middleware: authenticates protected routes, checks scope and query users, writes the audit line. */
  readonly middleware: MiddlewareHandler = async (c, next) => {
    const path = c.req.path;
    let route: string;
    let need: Scope | "admin" | undefined;
    const method = c.req.method;
    if (path === DATA_ROUTE) {
      route = DATA_ROUTE;
      need = method === "GET" || method === "HEAD"
        ? "read"
        : method === "POST"
        ? "write"
        : method === "DELETE"
        ? "delete"
        : undefined; // other methods get their 405 once authenticated
    } else if (path === "/metrics") {
      route = path;
      need = "metrics";
    } else if (path === "/tokens" || path.startsWith("/tokens/")) {
      route = path === "/tokens" ? path : "/tokens/{id}";
      need = "admin";
    } else {
      return next();
    }
    const started = performance.now();
    const who = this.authenticate(c.req.header("authorization"));
    const entry: AuditEntry = {
      token_id: null,
      token_name: null,
      method,
      route,
      user_id: null,
      status: 401,
      duration_ms: 0,
    };
    // GET and DELETE name their user(s) in the query; a POST's are checked in checkReadings.
    const users = route === DATA_ROUTE && method !== "POST" ? queryUsers(c) : undefined;
    if (users !== undefined && users.length > 0) {
      entry.user_id = users.length === 1 ? users[0] : users.slice(0, AUDIT_USERS);
    }
    if (route === "/tokens/{id}") {
      const id = path.slice("/tokens/".length);
      entry.target_id = TOKEN_ID.test(id) ? id : "(not a token id)";
    }
    if ("denial" in who) {
      if (who.record !== undefined) {
        entry.token_id = who.record.id;
        entry.token_name = who.record.name;
      }
      entry.reason = who.denial;
      await this.#dropBody(c.req.raw);
      const res = problemResponse(problem(401, "Unauthorized", DETAIL[who.denial]), {
        "www-authenticate": CHALLENGE[who.denial],
      });
      this.#finish(entry, res.status, started);
      return res;
    }
    entry.token_id = who.id;
    entry.token_name = who.name;
    let refusal: Response | undefined;
    if (need === "admin") {
      if (who !== this.#admin) refusal = forbidden("Only the admin token may manage tokens.");
    } else if (need !== undefined && who !== this.#admin && !who.scopes.has(need)) {
      refusal = forbidden(`This token does not have the \`${need}\` scope.`, {
        "www-authenticate": `${REALM}, error="insufficient_scope", scope="${need}"`,
      });
    } else if (users !== undefined && who.users !== "*") {
      const allowed = who.users;
      if (!users.every((u) => allowed.has(u))) refusal = forbidden(USER_FORBIDDEN);
    }
    if (refusal !== undefined) {
      await this.#dropBody(c.req.raw);
      this.#finish(entry, refusal.status, started);
      return refusal;
    }
    const state: RequestState = { principal: who, users: entry.user_id };
    c.set(STATE_KEY, state);
    try {
      await next();
    } finally {
      entry.user_id = state.users;
      this.#finish(entry, c.res.status, started);
    }
  };

  /**
   * For a POST: 403 (problem JSON) when a reading's user is outside the token's users, else
   * undefined. Call it after parsing and before writing. Without access control for this request
   * (no state recorded by the middleware) it answers undefined.
   */
  checkReadings(c: Context, readings: readonly Reading[]): Response | undefined {
    const state = c.get(STATE_KEY) as RequestState | undefined;
    if (state === undefined) return undefined;
    state.users = usersOf(readings);
    const allowed = state.principal.users;
    if (allowed === "*") return undefined;
    for (let i = 0; i < readings.length; i++) {
      if (!allowed.has(readings[i].userId)) return forbidden(BATCH_FORBIDDEN);
    }
    return undefined;
  }

  #finish(entry: AuditEntry, status: number, started: number): void {
    entry.status = status;
    entry.duration_ms = Math.round((performance.now() - started) * 1000) / 1000;
    this.#audit.record(entry);
  }

  /** Reads and drops a request body before a refusal, so clients that send it first see the answer. */
  async #dropBody(req: Request): Promise<void> {
    if (req.body === null || req.bodyUsed) return;
    try {
      await readBody(req, this.#maxBodyBytes);
    } catch {
      // the client went away
    }
  }
}

/**
 * Every `user_id` of the query, as Hono decodes them (the handler reads the first with
 * `c.req.query`). The common URL, with one plain `user_id` and no percent-encoding, takes Hono's
 * fast single lookup; anything else (repeats, encoded names or values) the full parse.
 */
function queryUsers(c: Context): string[] | undefined {
  const url = c.req.url;
  const q = url.indexOf("?");
  if (q < 0) return undefined;
  const first = url.indexOf("user_id", q);
  if (first >= 0 && url.indexOf("user_id", first + 7) < 0 && url.indexOf("%", q) < 0) {
    const v = c.req.query("user_id");
    return v === undefined ? undefined : [v];
  }
  return c.req.queries("user_id");
}

function forbidden(detail: string, headers?: Record<string, string>): Response {
  return problemResponse(problem(403, "Forbidden", detail), headers);
}

/** The user(s) a set of readings is about, for the audit line. */
function usersOf(readings: readonly Reading[]): string | string[] | null {
  if (readings.length === 0) return null;
  const first = readings[0].userId;
  if (readings.length === 1) return first;
  const seen = new Set<string>([first]);
  for (let i = 1; i < readings.length && seen.size < AUDIT_USERS; i++) seen.add(readings[i].userId);
  return seen.size === 1 ? first : [...seen];
}
