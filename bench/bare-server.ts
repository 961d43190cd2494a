/**
 * The ceiling for the ingest benchmark: a bare Hono route on the same runtime and server adapter
 * as pulsedb, that parses the JSON body and answers {"status":"accepted"}. No validation, no WAL.
 *
 *   PORT=8001 tsx bench/bare-server.ts
 */
import { Hono } from "hono";
import { serve } from "../src/http/serve.ts";

const app = new Hono();
app.post("/metrics/heart-rate", async (c) => {
  JSON.parse(await c.req.text());
  return new Response('{"status":"accepted"}', { status: 200, headers: { "content-type": "application/json" } });
});
app.get("/health", () => new Response('{"status":"ok"}', { headers: { "content-type": "application/json" } }));
app.get("/ready", () => new Response('{"status":"ready"}', { headers: { "content-type": "application/json" } }));
await serve(app.fetch, { hostname: process.env.HOST ?? "127.0.0.1", port: Number(process.env.PORT ?? 8001) });
