/**
 * A body that cannot be read whole (the client closed the connection before its Content-Length
 * arrived) is bad input: 400 problem JSON, never a 500.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { testApp } from "../support/harness.ts";

type T = Awaited<ReturnType<typeof testApp>>;

/** A request whose body stream fails after a few bytes, as a connection closed mid-body does. */
function brokenBody(path: string): Request {
  let sent = false;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (!sent) {
        sent = true;
        controller.enqueue(new TextEncoder().encode("{}"));
      } else controller.error(new Error("connection closed"));
    },
  });
  return new Request(`http://localhost${path}`, {
    method: "POST",
    body,
    headers: { "content-type": "application/json" },
    duplex: "half",
  } as RequestInit);
}

describe("readBody", () => {
  let t: T;
  before(async () => {
    t = await testApp();
  });
  after(async () => {
    await t.close();
  });

  it("a POST whose body breaks off answers 400 problem JSON, not 500", async () => {
    const res = await t.app.request(brokenBody("/metrics/heart-rate"));
    assert.equal(res.status, 400, await res.clone().text());
    assert.equal(res.headers.get("content-type"), "application/problem+json");
    const p = await res.json();
    assert.equal(p.status, 400);
    assert.match(p.detail, /could not be read/);
  });
});
