#!/usr/bin/env node
// Compiles TestToken.sol (an OpenZeppelin 5 ERC-20) with solc-js and writes
// {"contractName", "abi", "bytecode"} as JSON to the path given (default build/TestToken.json).
// Imports of `@openzeppelin/...` resolve from this project's node_modules.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const here = __dirname;
const out = path.resolve(process.argv[2] || path.join(here, "build", "TestToken.json"));
const source = "TestToken.sol";

function findImports(name) {
  const candidates = [path.join(here, "node_modules", name), path.join(here, name)];
  for (const file of candidates) {
    if (fs.existsSync(file)) {
      return { contents: fs.readFileSync(file, "utf8") };
    }
  }
  return { error: `not found: ${name}` };
}

const input = {
  language: "Solidity",
  sources: { [source]: { content: fs.readFileSync(path.join(here, source), "utf8") } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) {
  process.stderr.write(e.formattedMessage + "\n");
}
if (errors.length > 0) {
  process.exit(1);
}
const token = output.contracts[source].TestToken;
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(
  out,
  JSON.stringify({ contractName: "TestToken", abi: token.abi, bytecode: "0x" + token.evm.bytecode.object }, null, 2) + "\n",
);
console.log(`compiled TestToken with solc ${solc.version()}: ${out}`);
