#!/usr/bin/env node
// A stand-in price API for local runs of the oracle example (docs/triggers.md), on 127.0.0.1:
//   node price-api.js [PORT] [PAIR=PRICE...]
// answers `GET /price?pair=ETH%2FUSD` with {"pair": "ETH/USD", "price": "3421.55"}, and 404 for
// pairs it does not know. Default prices: ETH/USD=3421.55 BTC/USD=97000.5 DOT/USD=7.125.
"use strict";
const http = require("http");

const [port = "8900", ...given] = process.argv.slice(2);
const prices = new Map(
  (given.length ? given : ["ETH/USD=3421.55", "BTC/USD=97000.5", "DOT/USD=7.125"]).map((kv) => kv.split("=")),
);

http
  .createServer((req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    const pair = url.searchParams.get("pair");
    const price = url.pathname === "/price" ? prices.get(pair) : undefined;
    res.writeHead(price ? 200 : 404, { "content-type": "application/json" });
    res.end(JSON.stringify(price ? { pair, price } : { error: `no price for ${pair}` }));
    console.log(`${new Date().toISOString()} GET ${req.url} -> ${price ? 200 : 404}`);
  })
  .listen(Number(port), "127.0.0.1", () => console.log(`price API on http://127.0.0.1:${port}/price`));
