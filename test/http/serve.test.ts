/**
 * The runtime adapter: requests that Node's HTTP parser rejects still get problem JSON.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { serve } from "../../src/http/serve.ts";
import { isDeno } from "../support/child.ts";

function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    const s = net.connect(port, "127.0.0.1", () => s.write(text));
    s.on("data", (d) => (out += d.toString()));
    s.on("end", () => resolve(out));
    s.on("error", reject);
  });
}

describe("serve", { skip: isDeno() ? "Deno.serve answers malformed requests itself" : false }, () => {
  it("answers a malformed request line and oversized headers with problem JSON", async () => {
    const server = await serve(() => new Response("ok"), { hostname: "127.0.0.1", port: 0 });
    try {
      const bad = await raw(server.port, "GARBAGE\r\n\r\n");
      assert.match(bad, /^HTTP\/1\.1 400 /);
      assert.match(bad, /content-type: application\/problem\+json/);
      assert.equal(JSON.parse(bad.slice(bad.indexOf("\r\n\r\n") + 4)).status, 400);
      const big = await raw(server.port, `GET /?q=${"a".repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.match(big, /^HTTP\/1\.1 431 /);
      assert.equal(JSON.parse(big.slice(big.indexOf("\r\n\r\n") + 4)).status, 431);
    } finally {
      await server.close();
    }
  });
});
