#!/usr/bin/env node
// Compiles one of this directory's Solidity contracts with solc-js:
//   node compile.js NAME [OUT]
// reads NAME.sol, and writes {"contractName", "abi", "bytecode", "methods"} of contract NAME
// (methods: each function's signature and selector) as JSON to OUT
// (default build/NAME.json). Contracts: TestToken (an OpenZeppelin 5 ERC-20), PriceConsumer
// (the oracle example's consumer), FunctionConsumer (a rollup-anchor queue a Phat Function
// answers). Imports of `@openzeppelin/...` resolve from node_modules.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const here = __dirname;
const name = process.argv[2];
if (!name || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
  process.stderr.write("usage: node compile.js NAME [OUT]  (NAME.sol in " + here + ")\n");
  process.exit(2);
}
const source = `${name}.sol`;
if (!fs.existsSync(path.join(here, source))) {
  process.stderr.write(`no ${source} in ${here}\n`);
  process.exit(2);
}
const out = path.resolve(process.argv[3] || path.join(here, "build", `${name}.json`));

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
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.methodIdentifiers"] } },
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
const compiled = (output.contracts[source] || {})[name];
if (!compiled) {
  process.stderr.write(`${source} has no contract named ${name}\n`);
  process.exit(1);
}
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(
  out,
  JSON.stringify(
    {
      contractName: name,
      abi: compiled.abi,
      bytecode: "0x" + compiled.evm.bytecode.object,
      methods: compiled.evm.methodIdentifiers,
    },
    null,
    2,
  ) + "\n",
);
console.log(`compiled ${name} with solc ${solc.version()}: ${out}`);
