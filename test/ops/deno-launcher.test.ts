/**
 * The Deno launcher (issue 11, item 3): `deno task start` grants permissions derived from the
 * configuration, so a data directory outside the checkout works; signals reach the server and the
 * task exits with the server's code.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { denoPermissionFlags } from "../../src/ops/deno-launcher.ts";
import { removeDir } from "../support/harness.ts";
import { postJson, REPO_ROOT, startDaemon } from "../support/daemon.ts";

const DENO = path.join(REPO_ROOT, "node_modules", ".bin", "deno");

describe("denoPermissionFlags", () => {
  it("grants read on the checkout's code and the data dir, write only on the data dir", () => {
    const flags = denoPermissionFlags({ PULSE_DATA_DIR: "/var/lib/pulsedb" }, "/srv/pulsedb");
    assert.ok(
      flags.includes(
        "--allow-read=/srv/pulsedb/node_modules,/srv/pulsedb/src,/srv/pulsedb/package.json,/srv/pulsedb/deno.json,/var/lib/pulsedb",
      ),
    );
    assert.ok(flags.includes("--allow-write=/var/lib/pulsedb"));
    assert.ok(flags.includes("--allow-ffi=/srv/pulsedb/node_modules"));
    assert.ok(!flags.some((f) => f === "--allow-read" || f === "--allow-write" || f === "-A"), "nothing unrestricted");
  });

  it("defaults the data dir to ./data of the working directory", () => {
    const flags = denoPermissionFlags({}, "/srv/pulsedb", "/srv/pulsedb");
    assert.ok(flags.includes("--allow-write=/srv/pulsedb/data"));
  });

  it("adds the admin token file (read) and the audit log (read, write) only when set", () => {
    const flags = denoPermissionFlags(
      { PULSE_DATA_DIR: "/d", PULSE_ADMIN_TOKEN_FILE: "/etc/pulsedb/token", PULSE_AUDIT_LOG: "/var/log/pulse.log" },
      "/srv/p",
    );
    const read = flags.find((f) => f.startsWith("--allow-read="))!;
    const write = flags.find((f) => f.startsWith("--allow-write="))!;
    assert.ok(read.includes("/etc/pulsedb/token") && read.includes("/var/log/pulse.log"));
    assert.equal(write, "--allow-write=/d,/var/log/pulse.log");
    assert.ok(!denoPermissionFlags({}, "/srv/p").some((f) => f.includes("token") || f.includes(".log")));
  });

  it("refuses a path with a comma, naming the variable", () => {
    assert.throws(() => denoPermissionFlags({ PULSE_DATA_DIR: "/a,b" }, "/srv/p"), /PULSE_DATA_DIR=\/a,b/);
  });
});

describe("deno task start", { skip: fs.existsSync(DENO) ? false : "no deno binary" }, () => {
  it(
    "serves with a data directory outside the checkout and stops cleanly on SIGTERM",
    { timeout: 120_000 },
    async () => {
      const outside = fs.mkdtempSync(path.join(os.tmpdir(), "pulsedb-outside-"));
      const dataDir = path.join(outside, "data"); // not yet created: the server creates it
      const d = startDaemon({ PULSE_DATA_DIR: dataDir }, { cmd: DENO, args: ["task", "start"] });
      try {
        const base = (await d.waitFor((l) => l.msg === "listening")).url as string;
        await d.waitFor((l) => l.msg === "ready");
        const res = await postJson(base, {
          user_id: "u1",
          device_id: "device_a",
          timestamp: "2024-01-15T10:00:00Z",
          heart_rate: 70,
        });
        assert.equal(res.status, 200, await res.clone().text());
        await res.body?.cancel();
        const get = await fetch(
          `${base}/metrics/heart-rate?user_id=u1&start=2024-01-15T00:00:00Z&end=2024-01-16T00:00:00Z`,
        );
        assert.equal(get.status, 200);
        await get.body?.cancel();
        d.kill("SIGTERM");
        const { code, signal } = await d.exited;
        assert.ok(d.lines.some((l) => l.msg === "closed"), `the server shut down cleanly:\n${d.stderr()}`);
        if (signal === null) assert.equal(code, 0, d.stderr());
        assert.ok(fs.existsSync(path.join(dataDir, "MANIFEST")));
        assert.ok(fs.readdirSync(path.join(dataDir, "runs")).length > 0, "flushed at shutdown");
        assert.doesNotMatch(d.stderr(), /Requires (read|write) access/);
      } finally {
        d.kill("SIGKILL");
        await d.exited;
        removeDir(outside);
      }
    },
  );

  it(
    "a second server on a data directory in use is refused, and the first keeps serving its readings",
    { timeout: 120_000 },
    async () => {
      const outside = fs.mkdtempSync(path.join(os.tmpdir(), "pulsedb-lock-"));
      const dataDir = path.join(outside, "data");
      const first = startDaemon({ PULSE_DATA_DIR: dataDir }, { cmd: DENO, args: ["task", "start"] });
      let second: ReturnType<typeof startDaemon> | undefined;
      try {
        const base = (await first.waitFor((l) => l.msg === "listening")).url as string;
        await first.waitFor((l) => l.msg === "ready");
        second = startDaemon({ PULSE_DATA_DIR: dataDir }, { cmd: DENO, args: ["task", "start"] });
        const served = await second.waitFor((l) => l.msg === "ready").then(() => true, () => false);
        assert.equal(served, false, "the second server must not start");
        const { code } = await second.exited;
        assert.notEqual(code, 0);
        assert.match(second.stderr(), /in use by process/);
        const res = await postJson(base, {
          user_id: "u1",
          device_id: "device_a",
          timestamp: "2024-01-15T10:00:00Z",
          heart_rate: 70,
        });
        assert.equal(res.status, 200);
        await res.body?.cancel();
        assert.ok(fs.existsSync(path.join(dataDir, "LOCK")), "the refused server left the first one's LOCK alone");
      } finally {
        second?.kill("SIGKILL");
        first.kill("SIGKILL");
        await first.exited;
        removeDir(outside);
      }
    },
  );

  it(
    "a SIGKILL of the task leaves no server behind: the server notices and shuts down cleanly",
    { timeout: 120_000 },
    async () => {
      const outside = fs.mkdtempSync(path.join(os.tmpdir(), "pulsedb-orphan-"));
      const dataDir = path.join(outside, "data");
      const d = startDaemon({ PULSE_DATA_DIR: dataDir }, { cmd: DENO, args: ["task", "start"] });
      try {
        const base = (await d.waitFor((l) => l.msg === "listening")).url as string;
        await d.waitFor((l) => l.msg === "ready");
        d.kill("SIGKILL");
        await d.exited;
        // The server is gone once it stops answering and its LOCK is released (a clean close).
        const deadline = Date.now() + 30_000;
        let gone = false;
        while (!gone && Date.now() < deadline) {
          try {
            const r = await fetch(`${base}/health`);
            await r.body?.cancel();
          } catch {
            gone = !fs.existsSync(path.join(dataDir, "LOCK"));
          }
          if (!gone) await new Promise((r) => setTimeout(r, 100)); // poll interval, not synchronisation
        }
        assert.ok(gone, "the server stopped and released its LOCK after the task was killed");
      } finally {
        removeDir(outside);
      }
    },
  );
});
