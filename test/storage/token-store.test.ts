/**
 * The token store: hashes only on disk, durable create and revoke, reload, damaged files refused.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { AUTH_DIR, hashToken, TOKEN_FILE, TokenStore } from "../../src/storage/token-store.ts";
import { removeDir, tempDir } from "../support/harness.ts";

describe("token store", () => {
  it("issues pdb_ tokens of 256 random bits, keeps only their SHA-256, and finds them by hash", async () => {
    const dir = tempDir();
    try {
      const store = TokenStore.load(dir);
      const a = await store.create({ name: "device", users: ["u1", "u1", "u2"], scopes: ["write"], expiresAt: null });
      const b = await store.create({ name: "clinician", users: "*", scopes: ["read", "metrics"], expiresAt: 42 });
      for (const t of [a.token, b.token]) assert.match(t, /^pdb_[0-9a-f]{64}$/);
      assert.notEqual(a.token, b.token);
      assert.equal(store.lookup(hashToken(a.token)), a.record);
      assert.equal(store.lookup(hashToken(b.token)), b.record);
      assert.equal(store.lookup(hashToken(a.token + "x")), undefined);
      assert.deepEqual([...(a.record.users as Set<string>)], ["u1", "u2"]);
      assert.equal(b.record.users, "*");
      assert.equal(b.record.expiresAt, 42);
      const text = fs.readFileSync(path.join(dir, AUTH_DIR, TOKEN_FILE), "utf8");
      assert.ok(!text.includes(a.token) && !text.includes(b.token), "no token string on disk");
      assert.ok(text.includes(hashToken(a.token)), "its hash is");
    } finally {
      removeDir(dir);
    }
  });

  it("reloads tokens from disk, and a revocation is durable and effective at once", async () => {
    const dir = tempDir();
    try {
      const store = TokenStore.load(dir);
      const a = await store.create({ name: "a", users: ["u1"], scopes: ["read"], expiresAt: null });
      const b = await store.create({ name: "b", users: ["u2"], scopes: ["write", "delete"], expiresAt: 1000 });
      assert.equal(await store.revoke(a.record.id), true);
      assert.equal(store.lookup(hashToken(a.token)), undefined);
      assert.equal(await store.revoke(a.record.id), false);
      assert.equal(await store.revoke("nope"), false);
      const again = TokenStore.load(dir);
      assert.equal(again.size, 1);
      assert.equal(again.lookup(hashToken(a.token)), undefined);
      const r = again.lookup(hashToken(b.token));
      assert.ok(r);
      assert.equal(r.id, b.record.id);
      assert.equal(r.name, "b");
      assert.deepEqual([...r.scopes], ["write", "delete"]);
      assert.equal(r.expiresAt, 1000);
    } finally {
      removeDir(dir);
    }
  });

  it("serialises concurrent changes: every create and revoke lands", async () => {
    const dir = tempDir();
    try {
      const store = TokenStore.load(dir);
      const made = await Promise.all(
        Array.from(
          { length: 20 },
          (_, i) => store.create({ name: `t${i}`, users: "*", scopes: ["read"], expiresAt: null }),
        ),
      );
      await Promise.all(made.slice(0, 10).map((m) => store.revoke(m.record.id)));
      const again = TokenStore.load(dir);
      assert.equal(again.size, 10);
      for (const m of made.slice(10)) assert.ok(again.lookup(hashToken(m.token)));
    } finally {
      removeDir(dir);
    }
  });

  it("a missing data directory is an empty store; a damaged file is refused, naming it", () => {
    const dir = tempDir();
    try {
      assert.equal(TokenStore.load(path.join(dir, "does-not-exist")).size, 0);
      fs.mkdirSync(path.join(dir, AUTH_DIR));
      fs.writeFileSync(path.join(dir, AUTH_DIR, TOKEN_FILE), '{"format":1,"tokens":[{"id":"x"}]}');
      assert.throws(() => TokenStore.load(dir), /tokens\.json is damaged/);
      fs.writeFileSync(path.join(dir, AUTH_DIR, TOKEN_FILE), "{not json");
      assert.throws(() => TokenStore.load(dir), /tokens\.json is damaged/);
    } finally {
      removeDir(dir);
    }
  });
});
