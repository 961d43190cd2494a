/**
 * The `/tokens` routes (admin token only; the access-control middleware checks that before these
 * handlers run):
 * - `POST /tokens` `{"name", "users": [...] | "*", "scopes": [...], "expires_at"?}`: 201 with the new
 *   token's `{"id", "token", "name", "users", "scopes", "expires_at"}`, once it is durable. The token
 *   string is in this answer only. An invalid body: 400 validation problem with `errors`.
 * - `GET /tokens`: 200 `{"tokens": [...]}`, the same fields without `token`.
 * - `DELETE /tokens/{id}`: 204 once the revocation is durable; unknown id: 404.
 * - While the engine opens (start-up): 503 with `Retry-After: 1`, so that a second process that has
 *   not (yet) been refused the data directory's lock never writes the token file.
 *
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import { ID_PATTERN } from "../reading.ts";
import { SCOPES, type TokenRecord, type TokenStore } from "../storage/token-store.ts";
import { type FieldError, problem, problemResponse, VALIDATION_TITLE } from "./problem.ts";
import { readBody } from "./read-body.ts";
import { parseTimestamp } from "./timestamp.ts";

/** Longest token name. */
export const MAX_TOKEN_NAME = 200;
/** Most users one token may list. */
export const MAX_TOKEN_USERS = 10_000;

const USER_MESSAGE = "a user id is 1-128 characters from A-Z a-z 0-9 _ . : @ -";
const TIMESTAMP_MESSAGE =
  "expires_at must be an ISO 8601 date-time such as 2027-01-01T00:00:00Z (a real date, years 1970-9999)";

/** The body of `POST /tokens` (unknown fields are refused: a misspelt `expires_at` must not pass silently). */
export const newTokenSchema = z.strictObject({
  name: z
    .string({ error: (i) => (i.input === undefined ? "name is required" : "name must be a string") })
    .regex(new RegExp(`^[^\\u0000-\\u001f\\u007f]{1,${MAX_TOKEN_NAME}}$`), {
      error: `name must be 1 to ${MAX_TOKEN_NAME} characters, without control characters`,
    })
    .meta({ description: "A label for people and for the audit log.", example: "ward-3 monitor" }),
  users: z
    .union([
      z.literal("*"),
      z.array(z.string().regex(ID_PATTERN, { error: USER_MESSAGE })).min(1).max(MAX_TOKEN_USERS),
    ], {
      error: (i) =>
        i.input === undefined
          ? "users is required"
          : `users must be "*" or a list of 1 to ${MAX_TOKEN_USERS} user ids (1-128 characters from A-Z a-z 0-9 _ . : @ -)`,
    })
    .meta({ description: 'The users the token may read, write or delete: a list of user ids, or "*" for every user.' }),
  scopes: z
    .array(z.enum(SCOPES, { error: `a scope is one of ${SCOPES.join(", ")}` }), {
      error: (i) =>
        i.input === undefined ? "scopes is required" : `scopes must be a list drawn from ${SCOPES.join(", ")}`,
    })
    .min(1, { error: `scopes must hold at least one of ${SCOPES.join(", ")}` })
    .meta({ description: "What the token may do: read (GET), write (POST), delete (DELETE), metrics (GET /metrics)." }),
  expires_at: z
    .string({ error: TIMESTAMP_MESSAGE })
    .nullable()
    .optional()
    .meta({
      format: "date-time",
      description: "Optional: from this instant on, the token is refused.",
      example: "2027-01-01T00:00:00Z",
    }),
});

/** A token as answered (without its secret). */
export interface TokenView {
  id: string;
  name: string;
  users: "*" | string[];
  scopes: string[];
  expires_at: string | null;
}

/**
 * The public view of a token record.
 *
 * @example
 * ```ts
 * const record = {
 *   id: "3f2a9c0d11b2e4f5",
 *   name: "ward 3",
 *   users: new Set(["u1"]),
 *   scopes: new Set(["write"] as const),
 *   expiresAt: null,
 *   createdAt: 0,
 * };
 * tokenView(record); // { id: "3f2a9c0d11b2e4f5", name: "ward 3", users: ["u1"], scopes: ["write"], expires_at: null }
 * ```
 */
export function tokenView(r: TokenRecord): TokenView {
  return {
    id: r.id,
    name: r.name,
    users: r.users === "*" ? "*" : [...r.users],
    scopes: [...r.scopes],
    expires_at: r.expiresAt === null ? null : new Date(r.expiresAt).toISOString().replace(".000Z", "Z"),
  };
}

/**
 * The `/tokens` sub-app; mount it with `app.route("/tokens", tokenRoutes(...))`.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { TokenStore } from "../storage/token-store.ts";
 * const app = new Hono();
 * const store = TokenStore.load("/var/lib/pulsedb");
 * app.route("/tokens", tokenRoutes(store, { now: Date.now, available: () => true, maxBodyBytes: 1 << 20 }));
 * ```
 */
export function tokenRoutes(
  store: TokenStore,
  opts: { now: () => number; available: () => boolean; maxBodyBytes: number },
): Hono {
  const app = new Hono();
  const decoder = new TextDecoder();

  app.use("*", async (_c, next) => {
    if (!opts.available()) {
      return problemResponse(
        problem(503, "Service Unavailable", "pulsedb is starting (replaying the write-ahead log); retry shortly."),
        { "retry-after": "1" },
      );
    }
    await next();
  });

  app.post("/", async (c) => {
    const bytes = await readBody(c.req.raw, opts.maxBodyBytes);
    if (bytes === undefined) {
      return problemResponse(problem(413, "Content Too Large", `The body is larger than ${opts.maxBodyBytes} bytes.`));
    }
    let body: unknown;
    try {
      body = JSON.parse(decoder.decode(bytes));
    } catch {
      return invalid([{ path: "", message: "malformed JSON" }], "The body is not valid JSON.");
    }
    const parsed = newTokenSchema.safeParse(body);
    if (!parsed.success) {
      return invalid(parsed.error.issues.map((i) => ({ path: pointer(i.path), message: i.message })));
    }
    const spec = parsed.data;
    let expiresAt: number | null = null;
    if (spec.expires_at !== undefined && spec.expires_at !== null) {
      const ms = parseTimestamp(spec.expires_at);
      if (ms === undefined) return invalid([{ path: "/expires_at", message: TIMESTAMP_MESSAGE }]);
      if (ms <= opts.now()) return invalid([{ path: "/expires_at", message: "expires_at must be in the future" }]);
      expiresAt = ms;
    }
    let made: Awaited<ReturnType<TokenStore["create"]>>;
    try {
      made = await store.create({ name: spec.name, users: spec.users, scopes: spec.scopes, expiresAt });
    } catch (err) {
      return storeFailure(err, "The token was not created.");
    }
    const { id, ...rest } = tokenView(made.record);
    return c.json({ id, token: made.token, ...rest }, 201);
  });

  app.get("/", (c) => c.json({ tokens: store.list().map(tokenView) }));

  app.delete("/:id", async (c) => {
    let revoked: boolean;
    try {
      revoked = await store.revoke(c.req.param("id"));
    } catch (err) {
      return storeFailure(err, "The token was not revoked and is still valid.");
    }
    if (!revoked) return problemResponse(problem(404, "Not Found", "No token has this id."));
    return c.body(null, 204);
  });

  return app;
}

function invalid(errors: FieldError[], detail = "The token request is invalid; no token was created."): Response {
  return problemResponse(problem(400, VALIDATION_TITLE, detail, errors));
}

function storeFailure(err: unknown, what: string): Response {
  const code = (err as NodeJS.ErrnoException)?.code ?? "I/O error";
  return problemResponse(
    problem(503, "Service Unavailable", `The token file could not be written (${code}). ${what} Retry later.`),
    { "retry-after": "1" },
  );
}

function pointer(path: readonly PropertyKey[]): string {
  let p = "";
  for (const key of path) p += "/" + String(key).replaceAll("~", "~0").replaceAll("/", "~1");
  return p;
}
