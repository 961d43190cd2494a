/**
 * RFC 9457 problem details, independent of any HTTP framework: a plain object and a web-standard
 * `Response` (works with Hono, `Deno.serve` and Node's global `Response`).
 *
 * Problem types:
 * - {@link VALIDATION_PROBLEM_TYPE} (`https://pulsedb.dev/problems/validation`) when the problem
 *   carries field errors (a non-empty `errors` list): the request was well-formed HTTP but its
 *   content broke a rule of the contract. Its title is always {@link VALIDATION_TITLE}.
 * - `about:blank` for everything else (413, 404, 503, ...): the status code says it all, and the
 *   `title` should be the status's reason phrase (`"Content Too Large"`, `"Not Found"`, ...).
 *
 * @module
 */

/** One problem with one input field. */
export interface FieldError {
  /**
   * Where the problem is. For bodies a JSON Pointer (RFC 6901): `/heart_rate` in a single reading,
   * `/3/heart_rate` in element 3 of a batch, `/3` when element 3 is not an object, `` (empty) for
   * the body as a whole. For query parameters the parameter name (`user_id`, `start`, ...).
   */
  path: string;
  message: string;
}

/** The `type` of every problem that carries field errors. */
export const VALIDATION_PROBLEM_TYPE = "https://pulsedb.dev/problems/validation";
/** The `title` of every validation problem (stable per type, as RFC 9457 asks). */
export const VALIDATION_TITLE = "Validation failed";
/** The media type of every problem body. */
export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/** An RFC 9457 problem details object, as sent in the body of every 4xx/5xx answer. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: FieldError[];
}

/**
 * Builds a problem. With a non-empty `errors` list the type is {@link VALIDATION_PROBLEM_TYPE} and
 * `errors` is included; otherwise the type is `about:blank` and `errors` is left out.
 *
 * @example
 * problem(404, "Not Found", "no readings for user u1 in the range");
 * // { type: "about:blank", title: "Not Found", status: 404, detail: "no readings ..." }
 * problem(400, "Validation failed", "1 of 1 readings is invalid; nothing was stored.", [
 *   { path: "/heart_rate", message: "heart_rate must be a number between 30 and 220 (inclusive)" },
 * ]);
 * // { type: "https://pulsedb.dev/problems/validation", ..., errors: [...] }
 */
export function problem(status: number, title: string, detail: string, errors?: FieldError[]): Problem {
  if (errors !== undefined && errors.length > 0) {
    return { type: VALIDATION_PROBLEM_TYPE, title, status, detail, errors };
  }
  return { type: "about:blank", title, status, detail };
}

/**
 * Wraps a problem in a web-standard `Response` with `content-type: application/problem+json` and
 * the problem's status. Extra `headers` (e.g. `Retry-After`) are added; the content type always
 * wins over a content type given in `headers`.
 *
 * @example
 * const res = problemResponse(problem(503, "Service Unavailable", "write buffer full"), { "retry-after": "1" });
 * res.status;                      // 503
 * res.headers.get("content-type"); // "application/problem+json"
 */
export function problemResponse(p: Problem, headers?: Record<string, string>): Response {
  const h = new Headers(headers);
  h.set("content-type", PROBLEM_CONTENT_TYPE);
  return new Response(JSON.stringify(p), { status: p.status, headers: h });
}
