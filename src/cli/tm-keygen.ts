#!/usr/bin/env node
import { UserError } from "../errors.ts";
import { writeKeyPair } from "../security.ts";
import type { CommandSpec } from "./command.ts";
import { main } from "./command.ts";

const spec: CommandSpec = {
  name: "tm-keygen",
  usage: "tm-keygen PATH",
  summary:
    "Writes a CURVE key pair: PATH.key, the secret key (mode 600, never share it), and PATH.pub, the public key.\n" +
    "The master gets its .key (--curve-secret) and the workers' .pub files (--allow); each worker gets its own\n" +
    ".key (--curve-secret) and the master's .pub (--server-key).",
  flags: { force: { type: "boolean", help: "replace existing key files" } },
};

await main(spec, ({ flags, positionals, logger }) => {
  const path = positionals[0];
  if (!path || positionals.length > 1) throw new UserError(`expected one PATH (usage: ${spec.usage})`);
  const { keyFile, pubFile, publicKey } = writeKeyPair(path, flags.force === true);
  logger.info(`wrote ${keyFile} (secret, keep it private) and ${pubFile} (public key ${publicKey})`);
  return Promise.resolve(0);
});
