/**
 * Security: keys, CURVE with an allow-list, the protected default bind, and hostile input from
 * the network, which is dropped and counted and never marks a job done.
 */
import assert from "node:assert/strict";
import { mkdirSync, copyFileSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { test } from "node:test";
import { pack, unpack } from "msgpackr";
import * as zmq from "zeromq";
import { allExit, fixture, freeAddress, handledJobs, isOneLine, runToEnd, start, tally, tempDir } from "./helpers.ts";

const recorder = fixture("recorder.ts");

/** tm-keygen for each name, in `dir`. */
async function keys(t: TestContext, dir: string, ...names: string[]): Promise<void> {
  for (const name of names) {
    const { exit, stderr } = await runToEnd(t, "tm-keygen", [join(dir, name)]);
    assert.equal(exit.code, 0, stderr);
  }
}

test("tm-keygen writes a private .key (mode 600) and a .pub, and never overwrites them by accident", async (t) => {
  const dir = tempDir(t);
  await keys(t, dir, "master");
  const key = readFileSync(join(dir, "master.key"), "utf8");
  const pub = readFileSync(join(dir, "master.pub"), "utf8");
  assert.equal(statSync(join(dir, "master.key")).mode & 0o777, 0o600);
  const publicKey = /public-key = "(.{40})"/.exec(pub)?.[1];
  assert.ok(publicKey, pub);
  assert.ok(key.includes(`public-key = "${publicKey}"`));
  assert.match(key, /secret-key = ".{40}"/);
  assert.doesNotMatch(pub, /secret-key/);
  const again = await runToEnd(t, "tm-keygen", [join(dir, "master")]);
  assert.equal(again.exit.code, 1);
  assert.ok(isOneLine(again.stderr), again.stderr);
  assert.match(again.stderr, /master\.key exists already; use --force/);
  assert.equal(readFileSync(join(dir, "master.key"), "utf8"), key, "the key is unchanged");
});

test("with CURVE and an allow-list: an allowed worker completes the batch; an unlisted key and a plaintext worker get nothing", { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  await keys(t, dir, "master", "good", "stranger");
  mkdirSync(join(dir, "allowed"));
  copyFileSync(join(dir, "good.pub"), join(dir, "allowed", "good.pub"));
  const address = await freeAddress();
  const out = join(dir, "out");
  const env = { TM_TEST_OUT: out, TM_TEST_DELAY_MS: "1" };
  const master = start(
    t,
    "tm-master",
    [recorder, "count=2000", "--address", address, "--state", join(dir, "s.json"), "--no-progress", "--curve-secret", join(dir, "master.key"), "--allow", join(dir, "allowed")],
    { env },
  );
  await master.waitFor(/listening on/);
  const short = ["--timeout", "300", "--retries", "3"];
  // Secrets may come from the environment too.
  const stranger = start(t, "tm-worker", [recorder, "--address", address, ...short], {
    env: { ...env, TM_CURVE_SECRET: join(dir, "stranger.key"), TM_SERVER_KEY: join(dir, "master.pub") },
  });
  const plain = start(t, "tm-worker", [recorder, "--address", address, ...short], { env });
  const [st, pl] = await allExit([stranger, plain]);
  assert.equal(st.code, 1);
  assert.match(stranger.stderr, /the master refused this worker's key: add its \.pub to the master's --allow/);
  assert.equal(pl.code, 1);
  assert.match(plain.stderr, /handshake with the master failed: it may require encryption/);
  assert.equal(handledJobs(out).size, 0, "refused workers got no job");
  assert.equal(master.stderr.match(/refused a worker from/g)?.length, 1, "the refusal is logged once per key");

  const good = start(t, "tm-worker", [recorder, "--address", address, "--curve-secret", join(dir, "good.key"), "--server-key", join(dir, "master.pub")], { env });
  const [m, g] = await allExit([master, good]);
  assert.equal(m.code, 0, master.stderr);
  assert.equal(g.code, 0, good.stderr);
  const { lost, duplicates } = tally(handledJobs(out), 2000);
  assert.deepEqual(lost, []);
  assert.equal(duplicates, 0);
});

test("a master refuses to listen beyond loopback without CURVE, unless --insecure", async (t) => {
  const dir = tempDir(t);
  const refused = await runToEnd(t, "tm-master", [recorder, "--address", "tcp://0.0.0.0:0", "--state", join(dir, "s.json")]);
  assert.equal(refused.exit.code, 1);
  assert.ok(isOneLine(refused.stderr), refused.stderr);
  assert.match(refused.stderr, /refusing to listen on tcp:\/\/0\.0\.0\.0:0 without encryption.*--curve-secret and --allow.*--insecure/);

  const out = join(dir, "out");
  const master = start(t, "tm-master", [recorder, "count=100", "--address", "tcp://0.0.0.0:0", "--insecure", "--state", join(dir, "s.json"), "--no-progress"], {
    env: { TM_TEST_OUT: out },
  });
  const [, endpoint] = await master.waitFor(/listening on (\S+);/);
  assert.match(master.stderr, /without encryption \(--insecure\)/);
  const port = /:(\d+)$/.exec(endpoint!)![1];
  const worker = start(t, "tm-worker", [recorder, "--address", `tcp://127.0.0.1:${port}`], { env: { TM_TEST_OUT: out } });
  const [m, w] = await allExit([master, worker]);
  assert.equal(m.code, 0, master.stderr);
  assert.equal(w.code, 0, worker.stderr);
});

test("a worker of another protocol version is told so", async (t) => {
  const dir = tempDir(t);
  const address = await freeAddress();
  const master = start(t, "tm-master", [recorder, "count=10", "--address", address, "--state", join(dir, "s.json"), "--no-progress"]);
  await master.waitFor(/listening on/);
  const dealer = new zmq.Dealer({ linger: 0 });
  t.after(() => dealer.close());
  dealer.connect(address);
  await dealer.send(pack([1, 99, "elsewhere", 1, 1]));
  const [reply] = await dealer.receive();
  const [type, reason, message] = unpack(reply!) as [number, string, string];
  assert.equal(type, 9);
  assert.equal(reason, "version");
  assert.match(message, /the master speaks taskmaster protocol 1 and this worker speaks 99/);
  master.kill("SIGINT");
  await master.exit();
});

test("a worker exits with the master's message when told it speaks another protocol version", async (t) => {
  const address = await freeAddress();
  const fakeMaster = new zmq.Router({ linger: 0 });
  t.after(() => fakeMaster.close());
  await fakeMaster.bind(address);
  const worker = start(t, "tm-worker", [recorder, "--address", address]);
  const [id] = await fakeMaster.receive();
  await fakeMaster.send([id!, pack([9, "version", "the master speaks taskmaster protocol 2 and this worker speaks 1: run the same taskmaster version on both"])]);
  const exit = await worker.exit();
  assert.equal(exit.code, 1);
  assert.ok(isOneLine(worker.stderr), worker.stderr);
  assert.match(worker.stderr, /the master refused this worker: the master speaks taskmaster protocol 2/);
});

test("a worker drops malformed frames from its master, keeps working, and acknowledges only real jobs", async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const address = await freeAddress();
  const fakeMaster = new zmq.Router({ linger: 0 });
  t.after(() => fakeMaster.close());
  await fakeMaster.bind(address);
  const worker = start(t, "tm-worker", [recorder, "--address", address, "--log-level", "debug"], { env: { TM_TEST_OUT: out } });
  const [id] = await fakeMaster.receive(); // HELLO
  const junk = [
    Buffer.from([0xc1]),
    pack("hello"),
    pack([]),
    pack([4, 7, [0, 2, 1], ["only one payload"]]),
    pack([4, 7, [-1, 1, 1], [5]]),
    pack([99, 1, 2]),
    pack([2, "epoch", 1]),
  ];
  for (const frame of junk) await fakeMaster.send([id!, frame]);
  await fakeMaster.send([id!, pack([2, 7, 500])]); // WELCOME, epoch 7
  await fakeMaster.send([id!, pack([4, 7, [41, 2, 1], [41, 42]])]); // JOBS 41 and 42
  const acked: number[] = [];
  while (acked.length < 2) {
    const [, body] = await fakeMaster.receive();
    const message = unpack(body!) as unknown[];
    if (message[0] === 5) {
      const runs = message[2] as number[];
      for (let i = 0; i < runs.length; i += 2) for (let k = 0; k < runs[i + 1]!; k++) acked.push(runs[i]! + k);
    }
  }
  assert.deepEqual(acked, [41, 42]);
  await fakeMaster.send([id!, pack([9, "done", "the batch is finished"])]);
  assert.equal((await worker.exit()).code, 0, worker.stderr);
  assert.equal(worker.stderr.match(/dropped a frame from the master/g)?.length, junk.length, worker.stderr);
  assert.deepEqual([...handledJobs(out).keys()].sort(), [41, 42]);
});

test("thousands of random and forged frames from several sockets during a batch: every job done exactly once, master exits 0", { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const address = await freeAddress();
  const jobs = 5000;
  const env = { TM_TEST_OUT: out, TM_TEST_DELAY_MS: "1" };
  const master = start(t, "tm-master", [recorder, `count=${jobs}`, "--address", address, "--state", join(dir, "s.json"), "--no-progress", "--log-level", "debug"], { env });
  await master.waitFor(/listening on/);
  const spawn = start(t, "tm-spawn", [recorder, "2", "--address", address, "--concurrency", "4", "--no-progress"], { env });

  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const int = (n: number) => Math.floor(random() * n);
  const junkValue = (): unknown =>
    [() => int(1e9) - 5e8, () => -1, () => 2 ** 60, () => 1.5, () => "x".repeat(int(100)), () => null, () => [int(jobs), int(100)], () => ({ a: 1 }), () => true][int(9)]!();
  let sent = 0;
  const fuzzer = async (index: number): Promise<void> => {
    const dealer = new zmq.Dealer({ linger: 0, sendTimeout: 0 });
    dealer.connect(address);
    // Some fuzzers say HELLO first, so that their forged acknowledgements carry the right epoch.
    let epoch = 0;
    if (index % 2 === 0) {
      await dealer.send(pack([1, 1, "fuzzer", 1000 + index, 1]));
      const [welcome] = await dealer.receive();
      epoch = (unpack(welcome!) as number[])[1]!;
    }
    for (let i = 0; i < 1000; i++) {
      let frame: Buffer | Buffer[];
      switch (int(8)) {
        case 0:
          frame = Buffer.from(Array.from({ length: int(64) }, () => int(256)));
          break;
        case 1:
          frame = pack(Array.from({ length: 1 + int(5) }, (_, k) => (k === 0 ? int(14) : junkValue())));
          break;
        case 2: // forged: done for jobs never leased to this socket
          frame = pack([5, epoch, [int(jobs), 1 + int(50)]]);
          break;
        case 3: // forged failures and returns
          frame = pack(int(2) ? [6, epoch, [[int(jobs), "forged", ""]]] : [7, epoch, [int(jobs), 1 + int(10)]]);
          break;
        case 4: // an earlier master's epoch
          frame = pack([5, epoch + 1 + int(1000), [int(jobs), 10]]);
          break;
        case 5:
          frame = [pack([8, epoch]), pack([8, epoch])];
          break;
        case 6: // bad shapes of valid types
          frame = pack([[5, 6, 7][int(3)], epoch, [int(jobs), 0, -5, 2 ** 54]]);
          break;
        default:
          frame = pack([8, epoch]);
      }
      // Once, a frame over the master's maxMessageSize: ZeroMQ drops that connection.
      if (index === 3 && i === 500) frame = Buffer.alloc(17 * 1024 * 1024, 1);
      try {
        await dealer.send(frame);
        sent++;
      } catch {
        // The master may be too busy to take it right now: that is the master's right.
      }
      if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    dealer.close();
  };
  await Promise.all([0, 1, 2, 3].map(fuzzer));
  t.diagnostic(`${sent} hostile frames sent`);

  const [m, s] = await allExit([master, spawn]);
  assert.equal(m.code, 0, master.stderr.split("\n").filter((l) => !l.includes("dropped")).join("\n"));
  assert.equal(s.code, 0);
  const { lost, duplicates } = tally(handledJobs(out), jobs);
  assert.deepEqual(lost, []);
  assert.equal(duplicates, 0);
  const dropped = Number(/\((\d+) dropped so far\)\n(?![\s\S]*dropped so far)/.exec(master.stderr)?.[1] ?? 0);
  t.diagnostic(`jobs ${jobs}, lost ${lost.length}, re-run ${duplicates}, frames dropped by the master ${dropped}`);
  assert.ok(dropped > 1000, `only ${dropped} frames were counted as dropped`);
});
