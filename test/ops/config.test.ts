/** Bad configuration names the variable and the value it was given (never a secret's). */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../../src/ops/config.ts";

const CASES: Array<[Record<string, string>, RegExp]> = [
  [{ PORT: "abc" }, /PORT=abc: /],
  [{ PORT: "70000" }, /PORT=70000: /],
  [{ PULSE_AUTH: "maybe" }, /PULSE_AUTH=maybe: /],
  [{ PULSE_DEVICE_PRIORITY: "device_a" }, /PULSE_DEVICE_PRIORITY=device_a: /],
  [{ PULSE_RETENTION: "soon" }, /PULSE_RETENTION=soon: /],
];

describe("loadConfig", () => {
  for (const [env, message] of CASES) {
    it(`refuses ${JSON.stringify(env)} with a message naming the variable and its value`, () => {
      assert.throws(() => loadConfig(env), (e: Error) => e instanceof ConfigError && message.test(e.message));
    });
  }

  it("never prints the admin token, even when it is refused", () => {
    const token = "short-secret";
    assert.throws(
      () => loadConfig({ PULSE_AUTH: "on", PULSE_ADMIN_TOKEN: token }),
      (e: Error) => e instanceof ConfigError && e.message.includes("PULSE_ADMIN_TOKEN") && !e.message.includes(token),
    );
  });
});
