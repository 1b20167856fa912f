// A Phat Function: answers the price requests an Ethereum contract queues through its rollup
// anchor (contracts/FunctionConsumer.sol). The request is `abi.encode(uint256 id, string pair)`
// as 0x hex; the answer `abi.encode(uint256 kind, uint256 id, uint256 value)`: kind 0 a price
// with 8 decimals, kind 1 an error code. `secrets` is the price API's URL.
//
//   phat fn build src/index.ts          bundles it to dist/index.js
//   phat fn run dist/index.js -a 0x… -a https://api.example/price
//   phat fn deploy dist/index.js --anchor 0x… --rpc URL --chain-id N --secrets URL

// The pink API phat (and Phala) give scripts.
declare const pink: {
  batchHttpRequest(
    requests: { url: string; method?: string; headers?: Record<string, string>; body?: string; returnTextBody?: boolean }[],
    timeoutMs?: number,
  ): ({ statusCode: number; body: string } | { error: string })[];
  hexDecode(hex: string): Uint8Array;
};

type Hex = `0x${string}`;

const word = (n: bigint): string => n.toString(16).padStart(64, "0");

function reply(kind: bigint, id: bigint, value: bigint): Hex {
  return `0x${word(kind)}${word(id)}${word(value)}`;
}

/** "3421.55" as an integer with `decimals` decimals. */
function units(text: string, decimals: number): bigint {
  const [whole, frac = ""] = String(text).split(".");
  return BigInt(whole + frac.padEnd(decimals, "0").slice(0, decimals));
}

export default function main(request: Hex, secrets: string): Hex {
  const hex = request.replace(/^0x/, "");
  let id = 0n;
  try {
    id = BigInt("0x" + hex.slice(0, 64));
    const offset = Number(BigInt("0x" + hex.slice(64, 128))) * 2;
    const length = Number(BigInt("0x" + hex.slice(offset, offset + 64)));
    const pair = new TextDecoder().decode(pink.hexDecode(hex.slice(offset + 64, offset + 64 + length * 2)));
    if (!/^[A-Z]{2,10}\/[A-Z]{2,10}$/.test(pair)) {
      return reply(1n, id, 1n);
    }
    const [answer] = pink.batchHttpRequest(
      [{ url: `${secrets}?pair=${encodeURIComponent(pair)}`, method: "GET", returnTextBody: true }],
      5000,
    );
    if ("error" in answer) {
      return reply(1n, id, 523n);
    }
    if (answer.statusCode !== 200) {
      return reply(1n, id, BigInt(answer.statusCode));
    }
    return reply(0n, id, units(JSON.parse(answer.body).price, 8));
  } catch (e) {
    // A request that does not decode is answered too, so the queue moves on.
    console.log(`malformed request: ${e}`);
    return reply(1n, id, 2n);
  }
}
