/**
 * The OpenAPI 3.1 description of the HTTP API, served at `GET /openapi.json`.
 *
 * Request schemas are generated from the very zod schemas that validate requests
 * (`validation.ts`), with `io: "input"` because `timestamp`, `start` and `end` are transformed to
 * epoch milliseconds on output; the wire format is the input. Answer schemas are declared here (they
 * are produced by pulsedb, not validated). Examples follow docs/api.md.
 *
 * @module
 */
import { z } from "zod";
import { MAX_BATCH, MAX_HEART_RATE, MIN_HEART_RATE } from "../reading.ts";
import {
  BUCKET_MS,
  DEFAULT_BUCKET,
  deleteSchema,
  MAX_BUCKETS,
  querySchema,
  readingBatchSchema,
  readingsBodySchema,
  readingSchema,
} from "./validation.ts";
import { ARROW_STREAM_TYPE, MAX_ARROW_ERRORS, MAX_ARROW_ROWS } from "./arrow-ingest.ts";
import { newTokenSchema } from "./tokens.ts";
import { SCOPES } from "../storage/token-store.ts";

/** The API version in `info.version`. */
export const API_VERSION = "0.1.0";

const REF = "#/components/schemas/";
const PROBLEM_TYPE = "application/problem+json";

// ---------------------------------------------------------------------------------------------
// Answer schemas (documentation only)

const fieldErrorSchema = z.object({
  path: z.string().meta({
    description:
      "JSON Pointer into the body (`/3/heart_rate`; empty for the whole body), or the query parameter's name.",
  }),
  message: z.string(),
});

const problemSchema = z
  .object({
    type: z.string().meta({
      description: "`https://pulsedb.dev/problems/validation` when `errors` is present, else `about:blank`.",
    }),
    title: z.string(),
    status: z.number().int().min(400).max(599),
    detail: z.string(),
    errors: z.array(fieldErrorSchema).optional().meta({ description: "Every bad field (validation problems only)." }),
  })
  .meta({ description: "RFC 9457 problem details; the body of every 4xx and 5xx answer." });

const acceptedSchema = z
  .object({
    status: z.literal("accepted"),
    count: z.number().int().min(1).max(MAX_BATCH).optional().meta({ description: "Readings stored (batches only)." }),
  })
  .meta({ description: "The readings are durable (in the fsync'd write-ahead log)." });

const bucketPointSchema = z.object({
  timestamp: z.string().meta({
    description: "Bucket start, UTC, `YYYY-MM-DDTHH:MM:SSZ`.",
    example: "2024-01-15T10:00:00Z",
  }),
  heart_rate: z.number().meta({
    description: "Mean heart rate of the answering device in the bucket, rounded to 2 decimals.",
    example: 72.5,
  }),
  device_id: z.string().meta({
    description: "The device that answers this bucket (the highest-priority one with readings).",
    example: "device_a",
  }),
});

const queryAnswerSchema = z.object({
  user_id: z.string(),
  data: z.array(bucketPointSchema).meta({ description: "One entry per bucket with readings, ascending by timestamp." }),
  count: z.number().int().min(1).max(MAX_BUCKETS).meta({ description: "The length of `data`." }),
});

const healthSchema = z.object({ status: z.literal("ok") });
const readySchema = z.object({ status: z.literal("ready") });

// ---------------------------------------------------------------------------------------------
// Examples (docs/api.md)

const READING = { user_id: "user_1", device_id: "device_a", timestamp: "2024-01-15T10:00:00Z", heart_rate: 72 };
const BATCH = [READING, {
  user_id: "user_1",
  device_id: "device_b",
  timestamp: "2024-01-15T10:00:30+00:00",
  heart_rate: 75.5,
}];
const VALIDATION_PROBLEM = {
  type: "https://pulsedb.dev/problems/validation",
  title: "Validation failed",
  status: 400,
  detail: "1 of 2 readings is invalid; nothing was stored.",
  errors: [{
    path: "/1/heart_rate",
    message: `heart_rate must be a number between ${MIN_HEART_RATE} and ${MAX_HEART_RATE} (inclusive)`,
  }],
};

function problemExample(status: number, title: string, detail: string) {
  return { type: "about:blank", title, status, detail };
}

const RETRY_AFTER = { "Retry-After": { $ref: "#/components/headers/RetryAfter" } };

function problemResponse(
  description: string,
  examples: Record<string, { summary: string; value: unknown }>,
  headers?: object,
) {
  return {
    description,
    ...(headers ? { headers } : {}),
    content: { [PROBLEM_TYPE]: { schema: { $ref: `${REF}Problem` }, examples } },
  };
}

const UNAVAILABLE = problemResponse(
  "Not available now: starting (replaying the write-ahead log), shutting down, memtables at their memory budget, or the write-ahead log failed. Retry after `Retry-After` seconds.",
  {
    starting: {
      summary: "WAL replay in progress",
      value: problemExample(
        503,
        "Service Unavailable",
        "pulsedb is starting (replaying the write-ahead log); retry shortly.",
      ),
    },
  },
  RETRY_AFTER,
);

// ---------------------------------------------------------------------------------------------
// The document

/** Generates the document (call {@link openApiDocument} for the cached copy). */
export function buildOpenApiDocument(): Record<string, unknown> {
  const registry = z.registry<{ id: string }>();
  registry.add(readingSchema, { id: "Reading" });
  registry.add(readingBatchSchema, { id: "ReadingBatch" });
  registry.add(readingsBodySchema, { id: "IngestBody" });
  registry.add(acceptedSchema, { id: "Accepted" });
  registry.add(bucketPointSchema, { id: "BucketPoint" });
  registry.add(queryAnswerSchema, { id: "QueryAnswer" });
  registry.add(fieldErrorSchema, { id: "FieldError" });
  registry.add(problemSchema, { id: "Problem" });
  registry.add(healthSchema, { id: "Health" });
  registry.add(readySchema, { id: "Ready" });
  const generated = z.toJSONSchema(registry, { io: "input", uri: (id) => REF + id }) as {
    schemas: Record<string, Record<string, unknown>>;
  };
  const schemas: Record<string, Record<string, unknown>> = {};
  for (const [id, schema] of Object.entries(generated.schemas)) {
    const { $schema: _dialect, $id: _id, ...rest } = schema;
    schemas[id] = rest;
  }
  const reading = schemas.Reading as {
    description?: string;
    properties: Record<string, Record<string, unknown>>;
    examples?: unknown[];
  };
  reading.description =
    "One heart-rate reading. Other fields are ignored. Its identity is (user_id, device_id, timestamp): a later write of the same identity wins.";
  reading.properties.heart_rate.description =
    `Beats per minute, a JSON number (decimals allowed), ${MIN_HEART_RATE} <= value <= ${MAX_HEART_RATE}.`;
  reading.properties.heart_rate.example = 72;
  reading.examples = [READING];
  schemas.ReadingBatch.description = `A batch of 1 to ${MAX_BATCH} readings, all-or-nothing.`;

  return withAccessControl({
    openapi: "3.1.0",
    info: {
      title: "pulsedb",
      version: API_VERSION,
      description:
        "A time-series store for heart-rate readings. Ingest single readings or batches (durable when answered), " +
        "query them in time buckets with device priority. Every error body is RFC 9457 problem JSON.",
    },
    paths: {
      "/metrics/heart-rate": { post: ingestOperation(), get: queryOperation(), delete: deleteOperation() },
      "/health": {
        get: {
          operationId: "health",
          summary: "Liveness: 200 while the process can serve (also while starting or stopping).",
          tags: ["operations"],
          responses: {
            "200": {
              description: "The process is alive.",
              content: { "application/json": { schema: { $ref: `${REF}Health` }, example: { status: "ok" } } },
            },
          },
        },
      },
      "/ready": {
        get: {
          operationId: "ready",
          summary:
            "Readiness: 200 when data routes are served; 503 while the WAL is replayed at start-up or while shutting down.",
          tags: ["operations"],
          responses: {
            "200": {
              description: "Ready for traffic.",
              content: { "application/json": { schema: { $ref: `${REF}Ready` }, example: { status: "ready" } } },
            },
            "503": problemResponse(
              "Starting or shutting down; retry after `Retry-After` seconds.",
              {
                starting: {
                  summary: "WAL replay in progress",
                  value: problemExample(
                    503,
                    "Service Unavailable",
                    "pulsedb is starting (replaying the write-ahead log); retry shortly.",
                  ),
                },
                stopping: {
                  summary: "Shutting down",
                  value: problemExample(503, "Service Unavailable", "pulsedb is shutting down."),
                },
              },
              RETRY_AFTER,
            ),
          },
        },
      },
      "/metrics": {
        get: {
          operationId: "prometheusMetrics",
          summary: "Prometheus metrics (text exposition format 0.0.4).",
          tags: ["operations"],
          responses: {
            "200": {
              description: "The metrics.",
              content: {
                "text/plain; version=0.0.4": {
                  schema: { type: "string" },
                  example:
                    "# HELP pulsedb_readings_accepted_total Readings acknowledged (durable).\n# TYPE pulsedb_readings_accepted_total counter\npulsedb_readings_accepted_total 1200\n",
                },
              },
            },
            "503": UNAVAILABLE,
          },
        },
      },
      "/": {
        get: {
          operationId: "dashboard",
          summary: "The dashboard: an HTML page that charts a user's heart rate (its scripts and styles are served " +
            "under /dashboard/).",
          tags: ["operations"],
          responses: {
            "200": { description: "The page.", content: { "text/html": { schema: { type: "string" } } } },
            "304": { description: "Not modified (the `If-None-Match` ETag matches)." },
          },
        },
      },
      "/openapi.json": {
        get: {
          operationId: "openapi",
          summary: "This document.",
          tags: ["operations"],
          responses: {
            "200": {
              description: "The OpenAPI 3.1 description.",
              content: { "application/json": { schema: { type: "object" } } },
            },
          },
        },
      },
    },
    components: {
      schemas,
      headers: {
        RetryAfter: {
          description: "Seconds to wait before retrying.",
          schema: { type: "integer", minimum: 0 },
          example: 1,
        },
      },
    },
  });
}

function ingestOperation() {
  return {
    operationId: "ingestHeartRate",
    summary: "Store one reading or a batch of readings.",
    description:
      `The body is one reading or a JSON array of 1 to ${MAX_BATCH} readings, or (Content-Type ${ARROW_STREAM_TYPE}) an ` +
      `Arrow IPC stream of readings. A batch is all-or-nothing: one invalid reading ` +
      "rejects it with 400, naming the index and field of every bad reading. The answer is sent once the readings are in the " +
      "fsync'd write-ahead log. Within a batch, a later element with the same identity wins.",
    tags: ["readings"],
    requestBody: {
      required: true,
      content: {
        "application/json": {
          schema: { $ref: `${REF}IngestBody` },
          examples: {
            single: { summary: "One reading", value: READING },
            batch: { summary: "A batch", value: BATCH },
          },
        },
        [ARROW_STREAM_TYPE]: {
          schema: {
            type: "string",
            contentMediaType: ARROW_STREAM_TYPE,
            description:
              `An Arrow IPC stream of up to ${MAX_ARROW_ROWS} rows, all-or-nothing, with columns user_id and device_id ` +
              "(utf8, large utf8 or dictionary<utf8>), timestamp (an Arrow timestamp of any unit, or int64/float64 ms since " +
              "the epoch, UTC) and heart_rate (float64, float32 or an integer type); extra columns are ignored. The same " +
              `rules as JSON readings apply; a 400 lists every bad cell as /<row>/<column> (up to ${MAX_ARROW_ERRORS}). ` +
              "The answer is a batch answer.",
          },
        },
      },
    },
    responses: {
      "200": {
        description: "Stored durably.",
        content: {
          "application/json": {
            schema: { $ref: `${REF}Accepted` },
            examples: {
              single: { summary: "One reading", value: { status: "accepted" } },
              batch: { summary: "A batch", value: { status: "accepted", count: 2 } },
            },
          },
        },
      },
      "400": problemResponse(
        "Malformed JSON, a body that is neither a reading nor an array, an empty array, or an invalid reading. Nothing was stored.",
        {
          invalid: { summary: "An invalid reading in a batch", value: VALIDATION_PROBLEM },
          malformed: {
            summary: "Malformed JSON",
            value: {
              type: "https://pulsedb.dev/problems/validation",
              title: "Validation failed",
              status: 400,
              detail: "The body is not valid JSON.",
              errors: [{ path: "", message: "malformed JSON" }],
            },
          },
        },
      ),
      "413": problemResponse(
        "The body is over the size limit (PULSE_MAX_BODY_BYTES, default 4 MiB) or the batch holds more than 10,000 readings.",
        {
          batch: {
            summary: "Too many readings",
            value: problemExample(
              413,
              "Content Too Large",
              `A batch holds at most ${MAX_BATCH} readings; this one has 10001.`,
            ),
          },
        },
      ),
      "503": problemResponse(
        "Not stored: starting (WAL replay), shutting down, memtables at their memory budget (back-pressure), or the write-ahead log failed. Retry after `Retry-After` seconds; nothing of the request was stored.",
        {
          overloaded: {
            summary: "Back-pressure",
            value: problemExample(
              503,
              "Service Unavailable",
              "Writes are arriving faster than they can be flushed; retry shortly. Nothing of this request was stored.",
            ),
          },
          starting: {
            summary: "WAL replay in progress",
            value: problemExample(
              503,
              "Service Unavailable",
              "pulsedb is starting (replaying the write-ahead log); retry shortly.",
            ),
          },
        },
        RETRY_AFTER,
      ),
    },
  };
}

function queryOperation() {
  const params = z.toJSONSchema(querySchema, { io: "input" }) as {
    properties: Record<string, Record<string, unknown>>;
    required?: string[];
  };
  const required = new Set(params.required ?? []);
  const describe: Record<string, { description: string; example?: string }> = {
    user_id: { description: "The user (1-128 characters from A-Z a-z 0-9 _ . : @ -).", example: "user_1" },
    device_id: {
      description:
        "Only this device's readings. Without it, each bucket is answered by the highest-priority device with readings in it.",
    },
    start: {
      description: "Range start, inclusive (ISO 8601 date-time; without an offset, UTC).",
      example: "2024-01-15T10:00:00Z",
    },
    end: { description: "Range end, exclusive; later than `start`.", example: "2024-01-15T11:00:00Z" },
    bucket: {
      description: `Bucket width, UTC buckets aligned to the epoch; one of ${
        Object.keys(BUCKET_MS).join(" ")
      } (default ${DEFAULT_BUCKET}). At most ${MAX_BUCKETS} buckets per answer.`,
      example: "5m",
    },
  };
  const parameters = Object.entries(params.properties).map(([name, schema]) => {
    const { description: _d, example: _e, ...rest } = schema;
    return {
      name,
      in: "query",
      required: required.has(name),
      description: describe[name]?.description ?? "",
      schema: rest,
      ...(describe[name]?.example ? { example: describe[name].example } : {}),
    };
  });
  return {
    operationId: "queryHeartRate",
    summary: "Bucketed heart rate of one user over a half-open time range.",
    description:
      "Readings with start <= timestamp < end, grouped into UTC buckets. Without `device_id`, each bucket is answered by the " +
      "highest-priority device (PULSE_DEVICE_PRIORITY) that has readings in it; `heart_rate` is the mean of that device's readings, " +
      "rounded to 2 decimals. A reading acknowledged before the query was sent is in the answer.",
    tags: ["readings"],
    parameters,
    responses: {
      "200": {
        description: "The buckets with readings.",
        content: {
          "application/json": {
            schema: { $ref: `${REF}QueryAnswer` },
            example: {
              user_id: "user_1",
              data: [
                { timestamp: "2024-01-15T10:00:00Z", heart_rate: 72, device_id: "device_a" },
                { timestamp: "2024-01-15T10:05:00Z", heart_rate: 75.5, device_id: "device_b" },
              ],
              count: 2,
            },
          },
        },
      },
      "400": problemResponse("A missing or invalid parameter, `start >= end`, or more than 100,000 buckets.", {
        invalid: {
          summary: "end before start",
          value: {
            type: "https://pulsedb.dev/problems/validation",
            title: "Validation failed",
            status: 400,
            detail: "Invalid query parameters: end.",
            errors: [{ path: "end", message: "end must be later than start (the range is start <= timestamp < end)" }],
          },
        },
      }),
      "404": problemResponse("No reading for that user (and device) in the range.", {
        empty: {
          summary: "No data",
          value: problemExample(
            404,
            "Not Found",
            "No readings for user user_1 in [2024-01-15T10:00:00Z, 2024-01-15T11:00:00Z).",
          ),
        },
      }),
      "503": UNAVAILABLE,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Access control (PULSE_AUTH=on): the bearer scheme, 401/403 on the protected operations, /tokens

/** Paths whose every operation needs a bearer token when access control is on. */
const PROTECTED_PATHS = new Set(["/metrics/heart-rate", "/metrics", "/tokens", "/tokens/{id}"]);
/** An obvious placeholder: no real token (nor anything shaped like one) appears in an example. */
const EXAMPLE_TOKEN = "pdb_EXAMPLE_NOT_A_REAL_TOKEN";
const TOKEN_VIEW = {
  id: "3f2a9c41d07be5a8",
  name: "ward-3 monitor",
  users: ["user_123", "user_456"],
  scopes: ["write"],
  expires_at: "2027-01-01T00:00:00Z",
};

/**
 * Adds access control to the document: the `bearerAuth` scheme, `security` on every operation
 * (the protected paths need the scheme; the others none), 401 and 403 answers on the protected
 * operations (whatever their method, so routes added later get them too), and the /tokens routes.
 */
function withAccessControl(doc: {
  [k: string]: unknown;
  paths: Record<
    string,
    Record<string, { security?: unknown; responses?: Record<string, unknown>; [k: string]: unknown }>
  >;
  components: Record<string, unknown>;
}) {
  const tokenBody = z.toJSONSchema(newTokenSchema, { io: "input" }) as Record<string, unknown>;
  delete tokenBody.$schema;
  const tokenView = {
    type: "object",
    required: ["id", "name", "users", "scopes", "expires_at"],
    properties: {
      id: { type: "string", description: "Public id: lists, revocation, audit lines." },
      name: { type: "string" },
      users: { anyOf: [{ const: "*" }, { type: "array", items: { type: "string" } }] },
      scopes: { type: "array", items: { enum: [...SCOPES] } },
      expires_at: { anyOf: [{ type: "string", format: "date-time" }, { type: "null" }] },
    },
  };
  const admin = { security: [{ bearerAuth: [] }], tags: ["tokens"] };
  doc.paths["/tokens"] = {
    post: {
      ...admin,
      operationId: "createToken",
      summary: "Issue a token (admin token only). The token string is in this answer only.",
      requestBody: {
        required: true,
        content: {
          "application/json": {
            schema: { $ref: `${REF}NewToken` },
            example: { name: "ward-3 monitor", users: ["user_123", "user_456"], scopes: ["write"] },
          },
        },
      },
      responses: {
        "201": {
          description: "Issued and durable.",
          content: {
            "application/json": {
              schema: {
                allOf: [{ $ref: `${REF}Token` }, {
                  type: "object",
                  required: ["token"],
                  properties: { token: { type: "string", description: "`pdb_` and 64 hex digits; shown once." } },
                }],
              },
              example: { ...TOKEN_VIEW, token: EXAMPLE_TOKEN },
            },
          },
        },
        "400": problemResponse("An invalid token request; nothing was created.", {
          invalid: {
            summary: "An unknown scope",
            value: {
              type: "https://pulsedb.dev/problems/validation",
              title: "Validation failed",
              status: 400,
              detail: "The token request is invalid; no token was created.",
              errors: [{ path: "/scopes/0", message: `a scope is one of ${SCOPES.join(", ")}` }],
            },
          },
        }),
        "503": UNAVAILABLE,
      },
    },
    get: {
      ...admin,
      operationId: "listTokens",
      summary: "Every issued token, without token strings (admin token only).",
      responses: {
        "200": {
          description: "The tokens.",
          content: {
            "application/json": {
              schema: {
                type: "object",
                required: ["tokens"],
                properties: { tokens: { type: "array", items: { $ref: `${REF}Token` } } },
              },
              example: { tokens: [TOKEN_VIEW] },
            },
          },
        },
        "503": UNAVAILABLE,
      },
    },
  };
  doc.paths["/tokens/{id}"] = {
    delete: {
      ...admin,
      operationId: "revokeToken",
      summary: "Revoke a token (admin token only): refused from the next request on.",
      parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" }, example: TOKEN_VIEW.id }],
      responses: {
        "204": { description: "Revoked (durably)." },
        "404": problemResponse("No token has this id.", {
          unknown: { summary: "Unknown id", value: problemExample(404, "Not Found", "No token has this id.") },
        }),
        "503": UNAVAILABLE,
      },
    },
  };
  for (const [p, ops] of Object.entries(doc.paths)) {
    for (const op of Object.values(ops)) {
      if (!PROTECTED_PATHS.has(p)) {
        op.security = [];
        continue;
      }
      op.security = [{ bearerAuth: [] }];
      op.responses = {
        ...op.responses,
        "401": { $ref: "#/components/responses/Unauthorized" },
        "403": { $ref: "#/components/responses/Forbidden" },
      };
    }
  }
  const schemas = doc.components.schemas as Record<string, unknown>;
  schemas.NewToken = tokenBody;
  schemas.Token = tokenView;
  doc.components.securitySchemes = {
    bearerAuth: {
      type: "http",
      scheme: "bearer",
      description: "With PULSE_AUTH=on: the admin token, or a token from POST /tokens (`pdb_...`). " +
        "Scopes: read (GET readings), write (POST), delete (DELETE), metrics (GET /metrics); readings only of the " +
        "token's users. With PULSE_AUTH=off no token is needed.",
    },
  };
  doc.components.responses = {
    Unauthorized: {
      description: "No bearer token, or one that is malformed, unknown, expired or revoked.",
      headers: {
        "WWW-Authenticate": { schema: { type: "string" }, example: 'Bearer realm="pulsedb", error="invalid_token"' },
      },
      content: {
        [PROBLEM_TYPE]: {
          schema: { $ref: `${REF}Problem` },
          example: problemExample(401, "Unauthorized", "The bearer token is not valid: unknown, expired or revoked."),
        },
      },
    },
    Forbidden: {
      description:
        "A valid token without the scope, or for other users (a batch with one such reading: nothing stored); /tokens with a token other than the admin token.",
      content: {
        [PROBLEM_TYPE]: {
          schema: { $ref: `${REF}Problem` },
          example: problemExample(403, "Forbidden", "This token may not access the readings of the requested user."),
        },
      },
    },
  };
  return doc;
}

function deleteOperation() {
  const params = z.toJSONSchema(deleteSchema, { io: "input" }) as {
    properties: Record<string, Record<string, unknown>>;
    required?: string[];
  };
  const required = new Set(params.required ?? []);
  const describe: Record<string, string> = {
    user_id: "The user whose readings are erased.",
    device_id: "Only this device's readings (default: every device).",
    start: "Range start, inclusive; with `end`, or neither (neither: all time).",
    end: "Range end, exclusive; later than `start`; with `start`, or neither.",
  };
  const parameters = Object.entries(params.properties).map(([name, schema]) => {
    const { description: _d, example: _e, ...rest } = schema;
    return { name, in: "query", required: required.has(name), description: describe[name] ?? "", schema: rest };
  });
  return {
    operationId: "deleteHeartRate",
    summary: "Erase a user's readings (right to erasure).",
    description:
      "Every matching reading accepted before the DELETE is gone from every later answer (cached or not), across restarts " +
      "and crashes; a reading accepted afterwards is stored as usual. Answered once the deletion is durable in the " +
      "write-ahead log. Deleting what does not exist is also 200. The files holding the readings are rewritten within " +
      "PULSE_ERASURE_DEADLINE (default 24h).",
    tags: ["readings"],
    parameters,
    responses: {
      "200": {
        description: "The deletion is durable.",
        content: {
          "application/json": {
            schema: { type: "object", properties: { status: { const: "deleted" } }, required: ["status"] },
            example: { status: "deleted" },
          },
        },
      },
      "400": problemResponse("A missing or invalid parameter, only one of `start`/`end`, or `start >= end`.", {
        invalid: {
          summary: "start without end",
          value: {
            type: "https://pulsedb.dev/problems/validation",
            title: "Validation failed",
            status: 400,
            detail: "Invalid query parameters: end.",
            errors: [{
              path: "end",
              message: "end is required when start is given (give both, or neither to delete all time)",
            }],
          },
        },
      }),
      "503": UNAVAILABLE,
    },
  };
}

let cached: string | undefined;

/**
 * The document as JSON text, generated on first use and cached.
 *
 * @example
 * ```ts
 * const doc = JSON.parse(openApiJson());
 * doc.openapi; // "3.1.0"
 * ```
 */
export function openApiJson(): string {
  cached ??= JSON.stringify(buildOpenApiDocument());
  return cached;
}
