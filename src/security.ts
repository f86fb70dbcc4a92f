/**
 * Security: CURVE keys (tm-keygen and the files it writes), the master's allow-list of worker
 * keys enforced by a ZAP handler, and the rule that a master only listens beyond this host when
 * its traffic is encrypted (or the user said --insecure). Redis' protected mode is the model.
 *
 * Key files use the CZMQ certificate format, so czmq's tools can read them:
 *
 *     metadata
 *     curve
 *         public-key = "<40 Z85 characters>"
 *         secret-key = "<40 Z85 characters>"     (only in the .key file)
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, extname, join } from "node:path";
import * as zmq from "zeromq";
import { UserError, messageOf } from "./errors.ts";
import type { Logger } from "./log.ts";

export interface KeyPair {
  publicKey: string;
  secretKey: string;
}

const Z85_KEY = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

/** Writes `PATH.key` (mode 600) and `PATH.pub`; refuses to overwrite either unless `force`. */
export function writeKeyPair(path: string, force = false): { keyFile: string; pubFile: string; publicKey: string } {
  const base = /\.(key|pub)$/.test(path) ? path.slice(0, -4) : path;
  const keyFile = `${base}.key`;
  const pubFile = `${base}.pub`;
  if (!force) {
    for (const file of [keyFile, pubFile]) {
      if (existsSync(file)) throw new UserError(`${file} exists already; use --force to replace it`);
    }
  }
  const { publicKey, secretKey } = zmq.curveKeyPair();
  const stamp = `#   Written by tm-keygen on ${new Date().toISOString()}`;
  try {
    mkdirSync(dirname(keyFile), { recursive: true, mode: 0o700 });
    writeFileSync(
      keyFile,
      `${stamp}\n#   taskmaster CURVE secret key: keep it private, give only the .pub to others.\n\n` +
        `metadata\ncurve\n    public-key = "${publicKey}"\n    secret-key = "${secretKey}"\n`,
      { mode: 0o600 },
    );
    chmodSync(keyFile, 0o600);
    writeFileSync(pubFile, `${stamp}\n#   taskmaster CURVE public key.\n\nmetadata\ncurve\n    public-key = "${publicKey}"\n`, {
      mode: 0o644,
    });
  } catch (error) {
    throw new UserError(`cannot write the key files ${keyFile} and ${pubFile}: ${messageOf(error)}`);
  }
  return { keyFile, pubFile, publicKey };
}

/** Reads a `.key` file written by tm-keygen (or a CZMQ secret certificate). */
export function readKeyPair(file: string, log?: Logger): KeyPair {
  const text = readKeyFile(file, "secret key");
  const publicKey = field(text, "public-key");
  const secretKey = field(text, "secret-key");
  if (!publicKey || !secretKey) {
    throw new UserError(`${file} is not a secret key file: it needs public-key and secret-key lines (make one with tm-keygen)`);
  }
  if ((statSync(file).mode & 0o077) !== 0) {
    log?.warn(`${file} can be read by other users; it holds a secret key (chmod 600 ${file})`);
  }
  return { publicKey, secretKey };
}

/** Reads a `.pub` file (or a bare Z85 public key). */
export function readPublicKey(file: string): string {
  const text = readKeyFile(file, "public key");
  const key = field(text, "public-key") ?? (Z85_KEY.test(text.trim()) ? text.trim() : undefined);
  if (!key) throw new UserError(`${file} is not a public key file (make one with tm-keygen)`);
  return key;
}

/** `--allow FILE|DIR`: one .pub file, or every *.pub in a directory. */
export function readAllowList(path: string): Set<string> {
  let files: string[];
  try {
    files = statSync(path).isDirectory()
      ? readdirSync(path)
          .filter((name) => extname(name) === ".pub")
          .map((name) => join(path, name))
      : [path];
  } catch (error) {
    throw new UserError(`cannot read the allow-list ${path}: ${messageOf(error)}`);
  }
  if (files.length === 0) throw new UserError(`the allow-list ${path} holds no .pub files`);
  return new Set(files.map(readPublicKey));
}

function readKeyFile(file: string, what: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw new UserError(`cannot read the ${what} ${file}: ${messageOf(error)}`);
  }
}

function field(text: string, name: string): string | undefined {
  const match = new RegExp(`^\\s*${name}\\s*=\\s*"([^"]{40})"\\s*$`, "m").exec(text);
  return match && Z85_KEY.test(match[1]!) ? match[1] : undefined;
}

// ---- Z85 ---------------------------------------------------------------------------------------

const Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/** Z85-encodes bytes whose length is a multiple of 4 (ZeroMQ RFC 32), e.g. a 32-byte key. */
export function z85Encode(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i + 4 <= bytes.length; i += 4) {
    let value = ((bytes[i]! << 24) >>> 0) + (bytes[i + 1]! << 16) + (bytes[i + 2]! << 8) + bytes[i + 3]!;
    let chunk = "";
    for (let k = 0; k < 5; k++) {
      chunk = Z85[value % 85]! + chunk;
      value = Math.floor(value / 85);
    }
    text += chunk;
  }
  return text;
}

// ---- where a master may listen -----------------------------------------------------------------

/** True for addresses only this host can reach: loopback TCP, ipc and inproc. */
export function isLocalAddress(address: string): boolean {
  if (/^(ipc|inproc):\/\//.test(address)) return true;
  const match = /^tcp:\/\/(.+):[^:]+$/.exec(address);
  if (!match) return false;
  const host = match[1]!.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Refuses a master that would listen beyond this host in clear text. */
export function checkExposure(address: string, encrypted: boolean, insecure: boolean, log: Logger): void {
  if (isLocalAddress(address) || encrypted) return;
  if (insecure) {
    log.warn(
      `listening on ${address} without encryption (--insecure): anyone who can reach it can read jobs, take jobs and mark them done`,
    );
    return;
  }
  throw new UserError(
    `refusing to listen on ${address} without encryption: anyone who can reach it could read jobs, take jobs and mark them done. ` +
      `Make keys with tm-keygen and give --curve-secret and --allow (see README, "Running on many machines"), or --insecure to accept the risk`,
  );
}

// ---- ZAP ----------------------------------------------------------------------------------------

/** Decides whether a client key may connect; called once per connection attempt. */
export type KeyPolicy = (publicKey: string, address: string) => boolean;

/**
 * The process's ZAP handler (ZeroMQ RFC 27): libzmq asks it, over inproc, whether each CURVE
 * client may connect. One per process, as the inproc address is fixed; each master socket
 * registers its own ZAP domain and policy.
 */
class ZapHandler {
  private socket: zmq.Router | undefined;
  private readonly policies = new Map<string, KeyPolicy>();

  async register(domain: string, policy: KeyPolicy): Promise<() => void> {
    if (!this.socket) {
      const socket = new zmq.Router();
      await socket.bind("inproc://zeromq.zap.01");
      this.socket = socket;
      void this.serve(socket);
    }
    this.policies.set(domain, policy);
    return () => {
      this.policies.delete(domain);
      if (this.policies.size === 0 && this.socket) {
        this.socket.close();
        this.socket = undefined;
      }
    };
  }

  private async serve(socket: zmq.Router): Promise<void> {
    try {
      for await (const frames of socket) {
        // [routing id, "", version, request id, domain, address, identity, mechanism, key]
        const [routingId, delimiter, version, requestId, domain, address, , mechanism, key] = frames;
        if (!routingId || !delimiter || !version || !requestId) continue;
        const policy = domain ? this.policies.get(domain.toString()) : undefined;
        const allowed =
          policy !== undefined &&
          mechanism?.toString() === "CURVE" &&
          key?.length === 32 &&
          policy(z85Encode(key), address?.toString() ?? "");
        await socket.send([routingId, delimiter, version, requestId, allowed ? "200" : "400", allowed ? "OK" : "not allowed", "", ""]);
      }
    } catch {
      // Closed.
    }
  }
}

export const zap = new ZapHandler();
