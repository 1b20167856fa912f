#!/usr/bin/env node
// A few steps against a local dev node (anvil), from its first unlocked account, over plain
// JSON-RPC:
//   node eth.js deploy-token RPC SUPPLY            deploys TestToken (compile.js's output), prints its address
//   node eth.js fund RPC TOKEN TO WEI AMOUNT        sends WEI wei and AMOUNT tokens to TO
//   node eth.js balances RPC TOKEN ADDRESS...       prints ETH and token balances
//   node eth.js pay RPC TO WEI                      sends WEI wei to TO
//   node eth.js deploy-consumer RPC ORACLE          deploys PriceConsumer answered by ORACLE, prints its address
//   node eth.js request RPC CONSUMER PAIR           asks the consumer for PAIR's price, prints the request id
//   node eth.js answers RPC CONSUMER [PAIR...]      prints each request's answer, and the pushed PAIRs' prices
//   node eth.js fn-consumer RPC                     deploys FunctionConsumer (a rollup-anchor queue), prints its address
//   node eth.js fn-attestor RPC CONSUMER ADDRESS    grants ADDRESS (a Phat Function's attestor) the attestor role
//   node eth.js fn-request RPC CONSUMER PAIR        queues a request for PAIR's price, prints its id
//   node eth.js fn-answers RPC CONSUMER             prints each request's answer and the queue
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
// A lone ABI `string` argument: offset, length, bytes padded to a word.
const abiString = (text) => {
  const hex = Buffer.from(text, "utf8").toString("hex");
  return word(32) + word(hex.length / 2) + hex.padEnd(Math.ceil(hex.length / 64) * 64, "0");
};
// A `string` answer of an eth_call.
const decodeString = (data) => {
  const hex = data.replace(/^0x/, "");
  const len = Number(BigInt("0x" + hex.slice(64, 128)));
  return Buffer.from(hex.slice(128, 128 + 2 * len), "hex").toString("utf8");
};
// PriceConsumer's compiled artifact (compile.js's output), compiled when missing.
function consumerArtifact() {
  const artifact = path.join(__dirname, "build", "PriceConsumer.json");
  if (!fs.existsSync(artifact)) {
    require("child_process").execFileSync("node", [path.join(__dirname, "compile.js"), "PriceConsumer"]);
  }
  return JSON.parse(fs.readFileSync(artifact, "utf8"));
}
const price8 = (v) => {
  const s = v.toString().padStart(9, "0");
  return `${s.slice(0, -8)}.${s.slice(-8)}`.replace(/\.?0+$/, "");
};
const addressWord = (a) => a.toLowerCase().replace(/^0x/, "").padStart(64, "0");
// FunctionConsumer's compiled artifact, compiled when missing.
function functionArtifact() {
  const artifact = path.join(__dirname, "build", "FunctionConsumer.json");
  if (!fs.existsSync(artifact)) {
    require("child_process").execFileSync("node", [path.join(__dirname, "compile.js"), "FunctionConsumer"]);
  }
  return JSON.parse(fs.readFileSync(artifact, "utf8"));
}

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
    if (!fs.existsSync(artifact)) require("child_process").execFileSync("node", [path.join(__dirname, "compile.js"), "TestToken"]);
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
  } else if (cmd === "pay") {
    const [to, wei] = args;
    await transact(url, { to, value: "0x" + BigInt(wei).toString(16) });
    console.log(`sent ${wei} wei to ${to}`);
  } else if (cmd === "deploy-consumer") {
    const { bytecode } = consumerArtifact();
    const receipt = await transact(url, { data: bytecode + addressWord(args[0]) });
    console.log(receipt.contractAddress);
  } else if (cmd === "request") {
    const [consumer, pair] = args;
    const { methods } = consumerArtifact();
    const receipt = await transact(url, { to: consumer, data: "0x" + methods["request(string)"] + abiString(pair) });
    const id = BigInt(receipt.logs[0].topics[1]);
    console.log(`request ${id} (${pair}) in block ${BigInt(receipt.blockNumber)}`);
  } else if (cmd === "answers") {
    const [consumer, ...pushed] = args;
    const { methods } = consumerArtifact();
    const call = (sig, argsHex) => rpc(url, "eth_call", [{ to: consumer, data: "0x" + methods[sig] + argsHex }, "latest"]);
    const last = BigInt(await call("lastId()", ""));
    for (let id = 1n; id <= last; id++) {
      const pair = decodeString(await call("pairs(uint256)", word(id)));
      const done = BigInt(await call("fulfilled(uint256)", word(id))) === 1n;
      const price = BigInt(await call("prices(uint256)", word(id)));
      console.log(`request ${id}  ${pair}  ${done ? price8(price) : "not answered"}`);
    }
    for (const pair of pushed) {
      const price = BigInt(await call("latest(string)", abiString(pair)));
      const at = BigInt(await call("updatedAt(string)", abiString(pair)));
      console.log(`latest ${pair}  ${at === 0n ? "never pushed" : `${price8(price)} at ${new Date(Number(at) * 1000).toISOString()}`}`);
    }
  } else if (cmd === "fn-consumer") {
    const receipt = await transact(url, { data: functionArtifact().bytecode });
    console.log(receipt.contractAddress);
  } else if (cmd === "fn-attestor") {
    const [consumer, attestor] = args;
    const { methods } = functionArtifact();
    await transact(url, { to: consumer, data: "0x" + methods["setAttestor(address,bool)"] + addressWord(attestor) + word(1) });
    console.log(`${attestor} may answer ${consumer}'s queue`);
  } else if (cmd === "fn-request") {
    const [consumer, pair] = args;
    const { methods } = functionArtifact();
    const call = (sig, argsHex) => rpc(url, "eth_call", [{ to: consumer, data: "0x" + methods[sig] + argsHex }, "latest"]);
    const id = BigInt(await call("nextRequest()", ""));
    const receipt = await transact(url, { to: consumer, data: "0x" + methods["request(string)"] + abiString(pair) });
    console.log(`request ${id} (${pair}) queued in block ${BigInt(receipt.blockNumber)}`);
  } else if (cmd === "fn-answers") {
    const [consumer] = args;
    const { methods } = functionArtifact();
    const call = (sig, argsHex) => rpc(url, "eth_call", [{ to: consumer, data: "0x" + methods[sig] + argsHex }, "latest"]);
    const next = BigInt(await call("nextRequest()", ""));
    for (let id = 1n; id < next; id++) {
      const pair = decodeString(await call("pairs(uint256)", word(id)));
      const answers = BigInt(await call("answersTo(uint256)", word(id)));
      const price = BigInt(await call("prices(uint256)", word(id)));
      const code = BigInt(await call("errorCodes(uint256)", word(id)));
      const what = answers === 0n ? "not answered" : code !== 0n ? `error ${code}` : price8(price);
      console.log(`request ${id}  ${pair}  ${what}`);
    }
    const head = BigInt(await call("queueHead()", ""));
    const tail = BigInt(await call("queueTail()", ""));
    console.log(`queue head ${head}, tail ${tail}`);
  } else {
    console.error(
      "usage: eth.js deploy-token RPC SUPPLY | fund RPC TOKEN TO WEI AMOUNT | balances RPC TOKEN ADDRESS... | " +
        "pay RPC TO WEI | deploy-consumer RPC ORACLE | request RPC CONSUMER PAIR | answers RPC CONSUMER [PAIR...] | " +
        "fn-consumer RPC | fn-attestor RPC CONSUMER ADDRESS | fn-request RPC CONSUMER PAIR | fn-answers RPC CONSUMER",
    );
    process.exit(2);
  }
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
