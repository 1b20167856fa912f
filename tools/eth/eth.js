#!/usr/bin/env node
// A few steps against a local dev node (anvil), from its first unlocked account, over plain
// JSON-RPC:
//   node eth.js deploy-token RPC SUPPLY            deploys TestToken (compile.js's output), prints its address
//   node eth.js fund RPC TOKEN TO WEI AMOUNT        sends WEI wei and AMOUNT tokens to TO
//   node eth.js balances RPC TOKEN ADDRESS...       prints ETH and token balances
"use strict";
const fs = require("fs");
const path = require("path");

let nextId = 1;
async function rpc(url, method, params) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params }),
  });
  const body = await res.json();
  if (body.error) {
    throw new Error(`${method}: ${body.error.message}`);
  }
  return body.result;
}

const word = (n) => BigInt(n).toString(16).padStart(64, "0");
const addressWord = (a) => a.toLowerCase().replace(/^0x/, "").padStart(64, "0");

async function transact(url, tx) {
  const [from] = await rpc(url, "eth_accounts", []);
  const hash = await rpc(url, "eth_sendTransaction", [{ from, ...tx }]);
  for (let i = 0; i < 100; i++) {
    const receipt = await rpc(url, "eth_getTransactionReceipt", [hash]);
    if (receipt) {
      if (receipt.status !== "0x1") throw new Error(`transaction ${hash} reverted`);
      return receipt;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`transaction ${hash} not mined`);
}

async function main() {
  const [cmd, url, ...args] = process.argv.slice(2);
  if (cmd === "deploy-token") {
    const artifact = path.join(__dirname, "build", "TestToken.json");
    if (!fs.existsSync(artifact)) require("child_process").execFileSync("node", [path.join(__dirname, "compile.js")]);
    const { bytecode } = JSON.parse(fs.readFileSync(artifact, "utf8"));
    const receipt = await transact(url, { data: bytecode + word(args[0]), gas: "0x2dc6c0" });
    console.log(receipt.contractAddress);
  } else if (cmd === "fund") {
    const [token, to, wei, amount] = args;
    await transact(url, { to, value: "0x" + BigInt(wei).toString(16) });
    await transact(url, { to: token, data: "0xa9059cbb" + addressWord(to) + word(amount) });
    console.log(`sent ${wei} wei and ${amount} tokens to ${to}`);
  } else if (cmd === "balances") {
    const [token, ...holders] = args;
    for (const h of holders) {
      const eth = BigInt(await rpc(url, "eth_getBalance", [h, "latest"]));
      const tok = BigInt(await rpc(url, "eth_call", [{ to: token, data: "0x70a08231" + addressWord(h) }, "latest"]));
      console.log(`${h}  eth ${eth}  token ${tok}`);
    }
  } else {
    console.error("usage: eth.js deploy-token RPC SUPPLY | fund RPC TOKEN TO WEI AMOUNT | balances RPC TOKEN ADDRESS...");
    process.exit(2);
  }
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
